// Package refusal holds the one terminal error of a pass: a spec the
// operator will not carry out until a person changes it. The planners
// (revision, meshca, ownership) return it; the reconciler reports it as
// Stalled with its reason and does not retry it hot.
package refusal

import "fmt"

// Error is a spec the operator will not carry out; Reason is one of the
// api/v1alpha1 Reason* constants, Message says what to change.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Newf is a refusal for reason, its message formatted as fmt.Sprintf does.
func Newf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}
