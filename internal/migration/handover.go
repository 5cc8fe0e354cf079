// Package migration decides, purely, how meshkeeper takes a live mesh over
// from an Istio control plane it did not make (spec.migration): how the
// injection of each pod is handed over from the foreign injector to
// meshkeeper's, which workloads move at each step, and when the migration
// is complete or aborted.
//
// Injection is handed over by one pod label, LabelMigrated, which only the
// migration puts on workloads' pod templates. The foreign injector's
// entries are narrowed to leave out pods carrying it (the one change
// meshkeeper makes to the foreign control plane, recorded so an abort
// restores it exactly), and meshkeeper's entries select only pods carrying
// it. A pod is thus matched by exactly one of the two, whichever its labels.
package migration

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// LabelMigrated marks a pod template (and so its pods) as moved to
	// meshkeeper's injector.
	LabelMigrated = "mesh.meshkeeper.dev/migrated"
	// AnnotationOriginalSelectors, on a foreign injector meshkeeper
	// narrowed, records each entry's objectSelector as it was (JSON, by
	// entry name), so that an abort restores it exactly.
	AnnotationOriginalSelectors = "mesh.meshkeeper.dev/original-object-selectors"
)

// ExcludeMigrated is the requirement added to each foreign entry's
// objectSelector.
func ExcludeMigrated() metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: LabelMigrated, Operator: metav1.LabelSelectorOpDoesNotExist}
}

// OnlyMigrated is the requirement added to each of meshkeeper's entries
// while a migration runs: they select no pod the foreign injector selects.
func OnlyMigrated() metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: LabelMigrated, Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}}
}

// Narrowed reports whether every entry of a foreign injector leaves out
// migrated pods.
func Narrowed(w *admissionregistrationv1.MutatingWebhookConfiguration) bool {
	if _, ok := w.Annotations[AnnotationOriginalSelectors]; !ok {
		return false
	}
	for _, h := range w.Webhooks {
		if !excludes(h.ObjectSelector) {
			return false
		}
	}
	return true
}

// Narrow returns a foreign injector with every entry's objectSelector
// leaving out migrated pods, and each entry's selector as it was recorded
// in AnnotationOriginalSelectors (an entry already recorded keeps its first
// record: narrowing twice records nothing new). The input is not changed.
func Narrow(w *admissionregistrationv1.MutatingWebhookConfiguration) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	out := w.DeepCopy()
	original, err := recorded(out)
	if err != nil {
		return nil, err
	}
	for i := range out.Webhooks {
		h := &out.Webhooks[i]
		if _, ok := original[h.Name]; !ok {
			was, err := json.Marshal(h.ObjectSelector)
			if err != nil {
				return nil, err
			}
			original[h.Name] = was
		}
		if excludes(h.ObjectSelector) {
			continue
		}
		if h.ObjectSelector == nil {
			h.ObjectSelector = &metav1.LabelSelector{}
		}
		h.ObjectSelector.MatchExpressions = append(h.ObjectSelector.MatchExpressions, ExcludeMigrated())
	}
	record, err := json.Marshal(original)
	if err != nil {
		return nil, err
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationOriginalSelectors] = string(record)
	return out, nil
}

// Restore returns a foreign injector with every entry's objectSelector as
// recorded before it was narrowed, and the record removed. An entry added
// since (not recorded) only loses the requirement Narrow adds. The input is
// not changed.
func Restore(w *admissionregistrationv1.MutatingWebhookConfiguration) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	out := w.DeepCopy()
	original, err := recorded(out)
	if err != nil {
		return nil, err
	}
	for i := range out.Webhooks {
		h := &out.Webhooks[i]
		if was, ok := original[h.Name]; ok {
			var sel *metav1.LabelSelector
			if err := json.Unmarshal(was, &sel); err != nil {
				return nil, fmt.Errorf("%s: the recorded objectSelector of %s: %w", AnnotationOriginalSelectors, h.Name, err)
			}
			h.ObjectSelector = sel
			continue
		}
		if h.ObjectSelector != nil {
			h.ObjectSelector.MatchExpressions = slices.DeleteFunc(h.ObjectSelector.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
				return r.Key == LabelMigrated
			})
		}
	}
	delete(out.Annotations, AnnotationOriginalSelectors)
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	return out, nil
}

// maxRecordBytes bounds the record read back: it is on an object others
// may write.
const maxRecordBytes = 64 << 10

// recorded reads AnnotationOriginalSelectors (empty when absent).
func recorded(w *admissionregistrationv1.MutatingWebhookConfiguration) (map[string]json.RawMessage, error) {
	original := map[string]json.RawMessage{}
	s, ok := w.Annotations[AnnotationOriginalSelectors]
	if !ok {
		return original, nil
	}
	if len(s) > maxRecordBytes {
		return nil, fmt.Errorf("%s on %s is larger than %d bytes", AnnotationOriginalSelectors, w.Name, maxRecordBytes)
	}
	if err := json.Unmarshal([]byte(s), &original); err != nil {
		return nil, fmt.Errorf("%s on %s: %w", AnnotationOriginalSelectors, w.Name, err)
	}
	return maps.Clone(original), nil
}

func excludes(s *metav1.LabelSelector) bool {
	return s != nil && slices.ContainsFunc(s.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
		return r.Key == LabelMigrated && r.Operator == metav1.LabelSelectorOpDoesNotExist
	})
}
