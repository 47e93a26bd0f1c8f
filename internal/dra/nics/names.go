package nics

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// DeviceName is the DNS label naming the device of the link ifName: the name itself when it
// is one already (eth1, ens5f0), else its lower-cased letters and digits with every other run
// of characters made one "-", and a hash of the whole name appended so that two names that
// differ only there (eth_1, eth.1, ETH1) stay two devices. It depends on ifName alone, so it
// is stable across rescans, restarts and nodes.
func DeviceName(ifName string) string {
	if isDNSLabel(ifName) {
		return ifName
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(ifName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	sum := sha256.Sum256([]byte(ifName))
	base := strings.TrimSuffix(b.String(), "-")
	if len(base) > 40 {
		base = strings.TrimSuffix(base[:40], "-")
	}
	if base == "" {
		base = "nic"
	}
	return base + "-" + hex.EncodeToString(sum[:4])
}

// isDNSLabel tells whether s is an RFC 1123 label: 1-63 lower-case letters, digits and "-",
// starting and ending with a letter or digit.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}
