package chartgen

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// A document is one object being turned into a template. Where the
// template needs more than a scalar (a block under a condition, a value
// given as YAML), the object holds a placeholder: a string value
// "@@helm:N@@", or a key "zzhelm-N" (sorted last among its siblings); the
// object is marshalled as YAML, then each placeholder's line is replaced by
// directive N's lines at that line's indentation.
type document struct {
	directives []directive
}

// directive renders the lines that replace a placeholder at indent; key is
// the key a value placeholder stood under ("" for a list item or a key placeholder).
type directive func(indent, key string) []string

// value returns a value placeholder for dir.
func (d *document) value(dir directive) string {
	d.directives = append(d.directives, dir)
	return fmt.Sprintf("@@helm:%d@@", len(d.directives)-1)
}

// key returns a key placeholder for dir (its value must be "").
func (d *document) key(dir directive) string {
	d.directives = append(d.directives, dir)
	return fmt.Sprintf("zzhelm-%d", len(d.directives)-1)
}

var (
	valueLine = regexp.MustCompile(`^(\s*)([^\s'"][^:]*): ['"]?@@helm:(\d+)@@['"]?$`)
	itemLine  = regexp.MustCompile(`^(\s*)- ['"]?@@helm:(\d+)@@['"]?$`)
	keyLine   = regexp.MustCompile(`^(\s*)zzhelm-(\d+): (?:""|'')$`)
)

// render marshals obj and replaces its placeholders.
func (d *document) render(obj map[string]any) (string, error) {
	data, err := yaml.Marshal(obj)
	if err != nil {
		return "", err
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		lines, err := d.expand(line)
		if err != nil {
			return "", err
		}
		out = append(out, lines...)
	}
	return strings.Join(out, "\n") + "\n", nil
}

// expand replaces a placeholder's line by its directive's lines.
func (d *document) expand(line string) ([]string, error) {
	indent, key, n := "", "", ""
	if m := valueLine.FindStringSubmatch(line); m != nil {
		indent, key, n = m[1], m[2], m[3]
	} else if m := itemLine.FindStringSubmatch(line); m != nil {
		indent, n = m[1], m[2]
	} else if m := keyLine.FindStringSubmatch(line); m != nil {
		indent, n = m[1], m[2]
	} else if strings.Contains(line, "@@helm:") || strings.Contains(line, "zzhelm-") {
		return nil, fmt.Errorf("a placeholder where chartgen cannot expand it: %q", line)
	} else {
		return []string{line}, nil
	}
	i, _ := strconv.Atoi(n)
	if i >= len(d.directives) {
		return nil, fmt.Errorf("no directive %d", i)
	}
	return d.directives[i](indent, key), nil
}

// scalar renders key: expr, unquoted (a number or boolean stays one).
func scalar(expr string) directive {
	return func(indent, key string) []string {
		return []string{fmt.Sprintf("%s%s: {{ %s }}", indent, key, expr)}
	}
}

// quoted renders a string holding template actions, double-quoted on one
// line (the YAML marshaller would fold a long one inside an action).
func quoted(text string) directive {
	return func(indent, key string) []string {
		if key == "" {
			return []string{fmt.Sprintf("%s- %s", indent, strconv.Quote(text))}
		}
		return []string{fmt.Sprintf("%s%s: %s", indent, key, strconv.Quote(text))}
	}
}

// asYAML renders key: and the value of expr as YAML below it.
func asYAML(expr string) directive {
	return func(indent, key string) []string {
		return []string{
			fmt.Sprintf("%s%s:", indent, key),
			fmt.Sprintf("%s  {{- toYaml %s | nindent %d }}", indent, expr, len(indent)+2),
		}
	}
}

// optionalYAML renders key: and the value of expr below it, only when it is not empty.
func optionalYAML(expr, key string) directive {
	return func(indent, _ string) []string {
		return []string{
			fmt.Sprintf("%s{{- with %s }}", indent, expr),
			fmt.Sprintf("%s%s:", indent, key),
			fmt.Sprintf("%s  {{- toYaml . | nindent %d }}", indent, len(indent)+2),
			indent + "{{- end }}",
		}
	}
}

// optionalScalar renders key: value of expr only when it is not empty.
func optionalScalar(expr, key string) directive {
	return func(indent, _ string) []string {
		return []string{
			fmt.Sprintf("%s{{- with %s }}", indent, expr),
			fmt.Sprintf("%s%s: {{ . }}", indent, key),
			indent + "{{- end }}",
		}
	}
}

// conditionalItems renders list items when condition holds.
func conditionalItems(condition string, items []string) directive {
	return func(indent, _ string) []string {
		lines := []string{fmt.Sprintf("%s{{- if %s }}", indent, condition)}
		for _, item := range items {
			lines = append(lines, fmt.Sprintf("%s- %s", indent, strconv.Quote(item)))
		}
		return append(lines, indent+"{{- end }}")
	}
}

// include renders a named template's YAML at the placeholder's indentation.
func include(name string) directive {
	return func(indent, _ string) []string {
		return []string{fmt.Sprintf("%s{{- include %q . | nindent %d }}", indent, name, len(indent))}
	}
}

// conditionExpr joins conditions that must all hold.
func conditionExpr(conditions []string) string {
	if len(conditions) == 1 {
		return conditions[0]
	}
	parts := make([]string, len(conditions))
	for i, c := range conditions {
		parts[i] = "(" + c + ")"
	}
	return "and " + strings.Join(parts, " ")
}
