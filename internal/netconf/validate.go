package netconf

import (
	"fmt"
	"strings"
	"unicode"
)

// TypeError reports a plugin type that is not a plain binary name.
type TypeError struct {
	Type   string
	Reason string
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("type %q: %s", e.Type, e.Reason)
}

// ValidateType checks that a plugin type is a plain binary name: not empty,
// not "." and without '/', '\\', "..", whitespace or control characters (NUL
// among them). The daemon runs the plugin as root; a path here would let a
// namespace user run any host binary. It returns a *TypeError.
func ValidateType(t string) error {
	if reason := typeFault(t); reason != "" {
		return &TypeError{Type: t, Reason: reason}
	}
	return nil
}

func typeFault(t string) string {
	switch {
	case t == "":
		return "must not be empty"
	case strings.ContainsAny(t, `/\`):
		return "must be a plain binary name, not a path"
	case t == "." || strings.Contains(t, ".."):
		return `must be a plain binary name, without ".."`
	case strings.IndexFunc(t, unicode.IsSpace) >= 0:
		return "must be a plain binary name, without whitespace"
	case strings.IndexFunc(t, unicode.IsControl) >= 0:
		return "must be a plain binary name, without control characters"
	}
	return ""
}

// NameError reports a network name that is unsafe to use.
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("network name %q: %s", e.Name, e.Reason)
}

// ValidateName checks a network name: not empty, without '/', '\\' or control
// characters. libcni names its cache files after the network, so a path
// separator here would let a config write files outside the cache dir. It
// returns a *NameError.
func ValidateName(name string) error {
	reason := ""
	switch {
	case name == "":
		reason = "must not be empty"
	case strings.ContainsAny(name, `/\`):
		reason = "must not contain a path separator"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		reason = "must not contain control characters"
	}
	if reason != "" {
		return &NameError{Name: name, Reason: reason}
	}
	return nil
}
