package spec

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxValueInError bounds how much of a faulty value a message repeats.
const maxValueInError = 64

// Error is every fault Parse found in a MultiNetworkPolicy, in the order of its fields. Each
// fault's Field is its path (`spec.ingress[0].from[1].ipBlock.except[0]`), BadValue the
// value as given, Type the kind of fault and Detail what is wrong, naming the value.
type Error struct {
	Faults field.ErrorList
}

// Error returns the faults, "; " between them, each as `PATH: DETAIL`, e.g.
// `spec.ingress[0].from[1].ipBlock.except[0]: "10.1.0.0/16" is not inside cidr "10.2.0.0/16"`.
func (e *Error) Error() string {
	parts := make([]string, len(e.Faults))
	for i, f := range e.Faults {
		parts[i] = f.Field + ": " + f.Detail
	}
	return strings.Join(parts, "; ")
}

// Unwrap returns each fault, a *field.Error.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Faults))
	for i, f := range e.Faults {
		errs[i] = f
	}
	return errs
}

// faults collects what a parse finds wrong.
type faults struct {
	list field.ErrorList
}

// add records a fault at p; detail is a format whose arguments name the value.
func (f *faults) add(t field.ErrorType, p *field.Path, value any, format string, args ...any) {
	f.list = append(f.list, &field.Error{Type: t, Field: p.String(), BadValue: value, Detail: fmt.Sprintf(format, args...)})
}

// mark is where a caller later asks whether faults were added since.
func (f *faults) mark() int { return len(f.list) }

func (f *faults) since(mark int) bool { return len(f.list) > mark }

// clip shortens s for a message.
func clip(s string) string {
	if len(s) <= maxValueInError {
		return s
	}
	return s[:maxValueInError] + "..."
}
