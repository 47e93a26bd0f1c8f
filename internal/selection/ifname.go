package selection

import "fmt"

// MaxInterfaceNameLen is the longest interface name the kernel accepts
// (IFNAMSIZ-1 bytes).
const MaxInterfaceNameLen = 15

// InterfaceNameError reports an interface name the kernel would refuse or
// misread.
type InterfaceNameError struct {
	Name   string
	Reason string
}

func (e *InterfaceNameError) Error() string {
	return fmt.Sprintf("interface name %q: %s", e.Name, e.Reason)
}

// ValidateInterfaceName checks a requested interface name: non-empty, at most
// 15 bytes, not "." or "..", and only printable ASCII other than '/', ':' and
// '%' (no whitespace). Beyond the kernel's own rule (dev_valid_name) it
// refuses '%', which the kernel reads as a template ("net%d") and replaces,
// and non-ASCII bytes, which the kernel's isspace may take for a space
// (0xA0). It returns an *InterfaceNameError.
func ValidateInterfaceName(name string) error {
	if reason := interfaceNameFault(name); reason != "" {
		return &InterfaceNameError{Name: name, Reason: reason}
	}
	return nil
}

// interfaceNameFault returns why name is not a valid interface name, or "".
func interfaceNameFault(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > MaxInterfaceNameLen:
		return fmt.Sprintf("longer than %d bytes", MaxInterfaceNameLen)
	case name == "." || name == "..":
		return `must not be "." or ".."`
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == ' ' || (c >= '\t' && c <= '\r'):
			return "must not contain whitespace"
		case c == '/' || c == ':' || c == '%':
			return fmt.Sprintf("must not contain %q", c)
		case c < 0x20 || c > 0x7e:
			return "must contain only printable ASCII characters"
		}
	}
	return ""
}
