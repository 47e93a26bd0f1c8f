package shim

import (
	"slices"
	"strconv"
	"strings"

	"github.com/multinet/multinet/internal/cniapi/wire"
)

// supportedVersions are the CNI versions the shim accepts from a runtime; the daemon converts
// the default network's result to the requested one.
var supportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// specVersion is the CNI version the VERSION answer is written in.
const specVersion = "1.1.0"

// sinceVersion is the first CNI version that has each of the later verbs.
var sinceVersion = map[string]string{"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}

// versionJSON is the answer to VERSION.
func versionJSON() []byte {
	b := []byte(`{"cniVersion":"` + specVersion + `","supportedVersions":[`)
	for i, v := range supportedVersions {
		if i > 0 {
			b = append(b, ',')
		}
		b = wire.AppendString(b, v)
	}
	return append(b, "]}\n"...)
}

func supportedList() string { return strings.Join(supportedVersions, ", ") }

// checkVersion checks the conf's cniVersion (none: 0.1.0) as skel does: the verb exists in
// that version and the shim supports it.
func (inv *invocation) checkVersion(version string) error {
	if version == "" {
		version = "0.1.0"
	}
	if since, ok := sinceVersion[inv.Command]; ok {
		atLeast, err := versionAtLeast(version, since)
		if err != nil {
			return inv.fail(errDecodingFailure, "the network configuration's cniVersion: "+err.Error())
		}
		if !atLeast {
			return inv.fail(errIncompatibleCNIVersion, inv.Command+" needs cniVersion "+since+
				" or later; the network configuration has "+strconv.Quote(version))
		}
	}
	if !slices.Contains(supportedVersions, version) {
		return inv.failDetails(errIncompatibleCNIVersion, "incompatible CNI versions: the network configuration has cniVersion "+
			strconv.Quote(version), "multinet supports "+supportedList())
	}
	return nil
}

// versionAtLeast compares two "major.minor.micro" versions.
func versionAtLeast(version, other string) (bool, error) {
	a, err := parseVersion(version)
	if err != nil {
		return false, err
	}
	b, err := parseVersion(other)
	if err != nil {
		return false, err
	}
	return slices.Compare(a[:], b[:]) >= 0, nil
}

// parseVersion reads "1", "1.1" or "1.1.0".
func parseVersion(version string) ([3]int, error) {
	var v [3]int
	parts := strings.Split(version, ".")
	if len(parts) > 3 {
		return v, &versionError{version}
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return v, &versionError{version}
		}
		v[i] = n
	}
	return v, nil
}

type versionError struct{ version string }

func (e *versionError) Error() string {
	return strconv.Quote(e.version) + " is not a version (major.minor.micro)"
}
