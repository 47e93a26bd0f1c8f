package shim

import (
	"strconv"
	"strings"
	"syscall"
)

// invocation is one CNI call as the runtime made it: the CNI_* environment.
type invocation struct {
	Command       string
	ContainerID   string
	Netns         string
	IfName        string
	Args          string
	Path          string
	NetnsOverride string
}

// required lists, per verb, the variables it needs, in skel's order.
var required = map[string][]string{
	"ADD":     {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"},
	"CHECK":   {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"},
	"DEL":     {"CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"},
	"GC":      {"CNI_PATH"},
	"STATUS":  {"CNI_PATH"},
	"VERSION": nil,
}

// maxIfName is the kernel's limit on an interface name (IFNAMSIZ less the NUL).
const maxIfName = 15

// readInvocation reads the CNI_* variables and checks them as skel does; the invocation is
// returned with the error so that the error can name the pod.
func readInvocation(getenv func(string) string) (*invocation, error) {
	inv := &invocation{Command: getenv("CNI_COMMAND"), ContainerID: getenv("CNI_CONTAINERID"),
		Netns: getenv("CNI_NETNS"), IfName: getenv("CNI_IFNAME"), Args: getenv("CNI_ARGS"),
		Path: getenv("CNI_PATH"), NetnsOverride: getenv("CNI_NETNS_OVERRIDE")}
	if inv.Command == "" {
		return inv, inv.fail(errInvalidEnvironmentVariables, "CNI_COMMAND is required")
	}
	need, known := required[inv.Command]
	if !known {
		return inv, inv.fail(errInvalidEnvironmentVariables, "unknown CNI_COMMAND "+strconv.Quote(inv.Command)+
			" (multinet answers ADD, DEL, CHECK, GC, STATUS and VERSION)")
	}
	have := map[string]string{"CNI_CONTAINERID": inv.ContainerID, "CNI_NETNS": inv.Netns,
		"CNI_IFNAME": inv.IfName, "CNI_PATH": inv.Path}
	var missing []string
	for _, name := range need {
		if have[name] == "" {
			missing = append(missing, name)
		}
	}
	if err := inv.checkNames(); err != nil {
		return inv, err
	}
	switch len(missing) {
	case 0:
		return inv, nil
	case 1:
		return inv, inv.fail(errInvalidEnvironmentVariables, missing[0]+" is required for "+inv.Command)
	}
	return inv, inv.fail(errInvalidEnvironmentVariables, strings.Join(missing, ", ")+" are required for "+inv.Command)
}

// checkNames checks the container ID and interface name of the verbs that carry them.
func (inv *invocation) checkNames() error {
	if inv.Command != "ADD" && inv.Command != "CHECK" && inv.Command != "DEL" {
		return nil
	}
	if inv.ContainerID != "" && !validName(inv.ContainerID) {
		return inv.fail(errInvalidEnvironmentVariables, "CNI_CONTAINERID "+strconv.Quote(inv.ContainerID)+
			" has invalid characters (letters, digits, '_', '.' and '-', starting with a letter or digit)")
	}
	if inv.IfName == "" {
		return nil
	}
	if fault := ifNameFault(inv.IfName); fault != "" {
		return inv.fail(errInvalidEnvironmentVariables, "CNI_IFNAME "+strconv.Quote(inv.IfName)+" "+fault)
	}
	return nil
}

// validName is skel's rule for container IDs and network names: ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return s != ""
}

// ifNameFault says what is wrong with an interface name for the kernel, or "".
func ifNameFault(name string) string {
	if len(name) > maxIfName {
		return "is too long (" + strconv.Itoa(maxIfName) + " bytes at most)"
	}
	if name == "." || name == ".." {
		return "is not an interface name"
	}
	for _, r := range name {
		if r == '/' || r == ':' || isSpace(r) {
			return "contains '/', ':' or white space"
		}
	}
	return ""
}

// isSpace is unicode.IsSpace without the unicode tables.
func isSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// checkNetns refuses an ADD or DEL whose CNI_NETNS is the shim's own network namespace
// (skel's check, made before the call rather than after it), unless CNI_NETNS_OVERRIDE.
func (inv *invocation) checkNetns() error {
	if inv.Command != "ADD" && inv.Command != "DEL" || inv.Netns == "" ||
		inv.NetnsOverride == "1" || strings.EqualFold(inv.NetnsOverride, "true") {
		return nil
	}
	var target, own syscall.Stat_t
	if syscall.Stat(inv.Netns, &target) != nil || syscall.Stat("/proc/self/ns/net", &own) != nil {
		return nil // a missing netns is the daemon's to judge (DEL of a gone sandbox)
	}
	if target.Dev == own.Dev && target.Ino == own.Ino {
		return inv.fail(errInvalidNetNS, "CNI_NETNS "+strconv.Quote(inv.Netns)+
			" is the plugin's own network namespace")
	}
	return nil
}

// who names the pod and container an error is about, from what the runtime passed.
func (inv *invocation) who() string {
	var namespace, name string
	for _, kv := range strings.Split(inv.Args, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "K8S_POD_NAMESPACE":
			namespace = v
		case "K8S_POD_NAME":
			name = v
		}
	}
	pod := name
	if namespace != "" && name != "" {
		pod = namespace + "/" + name
	}
	container := ""
	if validName(inv.ContainerID) {
		container = inv.ContainerID
		if len(container) > 12 { // valid: ASCII
			container = container[:12] + "…"
		}
	}
	switch {
	case pod != "" && container != "":
		return "pod " + pod + " (container " + container + ")"
	case pod != "":
		return "pod " + pod
	case container != "":
		return "container " + container
	}
	return ""
}

// fail is a CNI error with code, saying who it is about.
func (inv *invocation) fail(code uint, msg string) *Error {
	return inv.failDetails(code, msg, "")
}

func (inv *invocation) failDetails(code uint, msg, details string) *Error {
	if who := inv.who(); who != "" {
		msg = who + ": " + msg
	}
	return &Error{Code: code, Msg: "multinet: " + msg, Details: details}
}
