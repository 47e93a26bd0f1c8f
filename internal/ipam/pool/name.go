package pool

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
)

// maxNameNetwork is how much of the network name a block's object name keeps.
const maxNameNetwork = 40

// BlockName is the name of the IPBlock object of a block of pool: a DNS-1123 subdomain such
// as "storage-1a2b3c4d-10-1-0-64-26" or "1a2b3c4d-fd00--40-122": the pool's network name
// (up to its first '/', sanitised, at most 40 characters; left out when empty), 8 hex digits
// of the pool's SHA-256, the block's address with '.' and ':' as '-', and its prefix length.
// The address is written so that distinct blocks never share it; the pool is told apart only
// by the 8 hex digits, so whoever reads a block by name compares its spec.pool too.
func BlockName(pool string, block netip.Prefix) string {
	var b strings.Builder
	network, _, _ := strings.Cut(pool, "/")
	if n := sanitise(network); n != "" {
		b.WriteString(n)
		b.WriteByte('-')
	}
	b.WriteString(hash(pool)[:8])
	b.WriteByte('-')
	a := block.Addr()
	text := a.String()
	if a.Is4In6() { // "::ffff:1.2.3.4" would read as "::ffff:1:2:3:4"
		text = a.StringExpanded()
	}
	b.WriteString(strings.NewReplacer(".", "-", ":", "-").Replace(text))
	b.WriteByte('-')
	b.WriteString(strconv.Itoa(block.Bits()))
	return b.String()
}

// PoolLabel is the value of the pool label on a pool's objects: the first 16 hex digits of
// the SHA-256 of pool (label values are short; pools are not).
func PoolLabel(pool string) string { return hash(pool)[:16] }

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// sanitise lower-cases s, turns each run of other characters than [a-z0-9] into one '-', and
// keeps at most maxNameNetwork characters, starting and ending with a letter or digit.
func sanitise(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(c)
			dash = false
			continue
		}
		dash = true
	}
	out := b.String()
	if len(out) > maxNameNetwork {
		out = strings.TrimRight(out[:maxNameNetwork], "-")
	}
	return out
}
