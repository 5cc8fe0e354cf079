package podpatch

import (
	"encoding/json"
	"sort"
	"strconv"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
)

// jsonObject writes the members of one JSON object.
type jsonObject struct {
	b     []byte
	first bool
	err   error
}

func beginObject(b []byte) jsonObject {
	return jsonObject{b: append(b, '{'), first: true}
}

// key starts a member named by a Go field's JSON name, which needs no
// escaping.
func (o *jsonObject) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// mapKey starts a member named by a map key.
func (o *jsonObject) mapKey(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = AppendString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *jsonObject) str(k, v string) {
	o.key(k)
	o.b = AppendString(o.b, v)
}

func (o *jsonObject) strOmit(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *jsonObject) int(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) intOmit(k string, v int64) {
	if v != 0 {
		o.int(k, v)
	}
}

func (o *jsonObject) boolOmit(k string, v bool) {
	if v {
		o.key(k)
		o.b = append(o.b, "true"...)
	}
}

func (o *jsonObject) boolPtr(k string, v *bool) {
	if v != nil {
		o.key(k)
		o.b = strconv.AppendBool(o.b, *v)
	}
}

func (o *jsonObject) int64Ptr(k string, v *int64) {
	if v != nil {
		o.int(k, *v)
	}
}

func (o *jsonObject) int32Ptr(k string, v *int32) {
	if v != nil {
		o.int(k, int64(*v))
	}
}

func (o *jsonObject) strings(k string, v []string) {
	if len(v) == 0 {
		return
	}
	o.key(k)
	o.b = append(o.b, '[')
	for i, s := range v {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = AppendString(o.b, s)
	}
	o.b = append(o.b, ']')
}

func (o *jsonObject) capabilities(k string, v []corev1.Capability) {
	if len(v) == 0 {
		return
	}
	o.key(k)
	o.b = append(o.b, '[')
	for i, c := range v {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = AppendString(o.b, string(c))
	}
	o.b = append(o.b, ']')
}

// std encodes a member with encoding/json (for what injection never sets).
func (o *jsonObject) std(k string, v any) {
	o.key(k)
	js, err := json.Marshal(v)
	if err != nil && o.err == nil {
		o.err = err
	}
	o.b = append(o.b, js...)
}

func (o *jsonObject) end() ([]byte, error) {
	return append(o.b, '}'), o.err
}

// sub encodes a nested value with one of these encoders.
func (o *jsonObject) sub(k string, enc func([]byte) ([]byte, error)) {
	o.key(k)
	o.value(enc)
}

// value encodes a member's value, after mapKey.
func (o *jsonObject) value(enc func([]byte) ([]byte, error)) {
	var err error
	o.b, err = enc(o.b)
	if err != nil && o.err == nil {
		o.err = err
	}
}

func appendList[T any](b []byte, items []T, enc func([]byte, *T) ([]byte, error)) ([]byte, error) {
	b = append(b, '[')
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = enc(b, &items[i]); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// list encodes a slice member, omitted when empty.
func list[T any](o *jsonObject, k string, items []T, enc func([]byte, *T) ([]byte, error)) {
	if len(items) > 0 {
		o.sub(k, func(b []byte) ([]byte, error) { return appendList(b, items, enc) })
	}
}

func appendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, k)
		b = append(b, ':')
		b = AppendString(b, m[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the bytes encoding/json writes as they are: ASCII but
// control characters, quotes, backslashes and HTML's <, > and &.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendString appends s as a JSON string, escaped as encoding/json
// escapes it (including <, > and &, and invalid UTF-8 as U+FFFD).
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringContent(b, s)
	return append(b, '"')
}

func appendJSONStringContent(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && jsonSafe[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// appendPointerToken appends "/" and s as a JSON pointer reference token
// (RFC 6901: ~ as ~0, / as ~1), inside a JSON string.
func appendPointerToken(b []byte, s string) []byte {
	b = append(b, '/')
	for {
		i := indexAny(s, '~', '/')
		if i < 0 {
			return appendJSONStringContent(b, s)
		}
		b = appendJSONStringContent(b, s[:i])
		if s[i] == '~' {
			b = append(b, '~', '0')
		} else {
			b = append(b, '~', '1')
		}
		s = s[i+1:]
	}
}

func indexAny(s string, x, y byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == x || s[i] == y {
			return i
		}
	}
	return -1
}
