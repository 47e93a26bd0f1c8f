package selection

import (
	"fmt"
	"strings"
)

// maxValueInError bounds how much of a faulty value an error message repeats.
const maxValueInError = 64

// Error reports one fault in a networks annotation. Callers can errors.As on it
// to learn which element and which field are at fault.
type Error struct {
	// Index is the 1-based position of the faulty element, as the user counts;
	// 0 means the annotation as a whole is at fault.
	Index int
	// Network is the element's "namespace/name" (or the item as written when it
	// could not be split); empty when unknown.
	Network string
	// Field is the element's JSON field at fault ("interface", "mac",
	// "portMappings[1].hostPort", ...); empty when the whole element is.
	Field string
	// Value is the faulty value as given, if any.
	Value string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error, if any (a JSON decoding error, say).
	Err error
}

// Error returns e.g.
// `network selection element 2 ("net1/storage"): interface "this-name-is-too-long": longer than 15 bytes`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Index > 0 {
		fmt.Fprintf(&b, "network selection element %d", e.Index)
		if e.Network != "" {
			fmt.Fprintf(&b, " (%q)", clip(e.Network))
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		if e.Value != "" {
			fmt.Fprintf(&b, " %q", clip(e.Value))
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) <= maxValueInError {
		return s
	}
	return s[:maxValueInError] + "..."
}

// fieldError is a fault in one field of an element; the caller sets Index and Network.
func fieldError(field, value, reason string) *Error {
	return &Error{Field: field, Value: value, Reason: reason}
}
