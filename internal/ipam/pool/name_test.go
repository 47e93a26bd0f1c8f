package pool

import (
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/validate/content"
)

func TestBlockNameIsValidAndUnique(t *testing.T) {
	for _, tc := range []struct {
		pool  string
		block string
		want  string // the name, with the hash as HASH
	}{
		{"storage/v4", "10.1.0.64/26", "storage-HASH-10-1-0-64-26"},
		{"/v6", "fd00::40/122", "HASH-fd00--40-122"},
		{"/v6", "::/122", "HASH----122"},
		{"My_Net.Work/10.1.0.0/24", "10.1.0.0/26", "my-net-work-HASH-10-1-0-0-26"},
		{"--x--/v4", "10.1.0.0/26", "x-HASH-10-1-0-0-26"},
		{strings.Repeat("a", 39) + "-b/v4", "10.1.0.0/26", strings.Repeat("a", 39) + "-HASH-10-1-0-0-26"},
		{"/v6", "::ffff:1.2.3.0/126", "HASH-0000-0000-0000-0000-0000-ffff-0102-0300-126"},
	} {
		got := BlockName(tc.pool, pfx(tc.block))
		if want := strings.Replace(tc.want, "HASH", hash(tc.pool)[:8], 1); got != want {
			t.Errorf("BlockName(%q, %s) = %q, want %q", tc.pool, tc.block, got, want)
		}
		if errs := content.IsDNS1123Subdomain(got); len(errs) > 0 {
			t.Errorf("BlockName(%q, %s) = %q: %v", tc.pool, tc.block, got, errs)
		}
	}

	// Blocks that would read alike if the address were written naively stay apart, and so
	// do pools whose network names sanitise alike.
	names := map[string]string{}
	for _, pb := range []struct{ pool, block string }{
		{"/v6", "::ffff:1.2.3.4/128"}, {"/v6", "::ffff:1:2:3:4/128"},
		{"/v6", "1:2:3:4::/128"}, {"/v4", "1.2.3.4/32"},
		{"/v4", "10.1.0.0/26"}, {"/v4", "10.1.0.0/27"}, {"/v4", "10.1.0.64/26"},
		{"a.b/v4", "10.1.0.0/26"}, {"a-b/v4", "10.1.0.0/26"}, {"A_B/v4", "10.1.0.0/26"},
		{"a/10.1.0.0/24", "10.1.0.0/26"}, {"a/10.1.0.0/25", "10.1.0.0/26"},
	} {
		n := BlockName(pb.pool, pfx(pb.block))
		if prev, dup := names[n]; dup {
			t.Errorf("%s and %s %s share the name %q", prev, pb.pool, pb.block, n)
		}
		names[n] = pb.pool + " " + pb.block
	}
}

func TestPoolLabelIsALabelValue(t *testing.T) {
	for _, p := range []string{"", "/v4", "storage/fd00::/64", strings.Repeat("x", 300)} {
		l := PoolLabel(p)
		if len(l) != 16 || len(content.IsLabelValue(l)) > 0 {
			t.Errorf("PoolLabel(%q) = %q", p, l)
		}
	}
	if PoolLabel("/v4") == PoolLabel("/v6") {
		t.Error("two pools share a label")
	}
}

func FuzzBlockName(f *testing.F) {
	f.Add("storage/v4", "10.1.0.64", 26)
	f.Add("/v6", "fd00::40", 122)
	f.Fuzz(func(t *testing.T, pool, a string, bits int) {
		ip, err := netip.ParseAddr(a)
		if err != nil || bits < 0 || bits > ip.BitLen() {
			return
		}
		n := BlockName(pool, BlockOf(ip, bits))
		if errs := content.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Fatalf("BlockName(%q, %s/%d) = %q: %v", pool, ip, bits, n, errs)
		}
	})
}
