package nics

import (
	"regexp"
	"strings"
	"testing"
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func TestDeviceName(t *testing.T) {
	for _, tc := range []struct{ ifName, prefix string }{
		{"eth1", "eth1"},
		{"ens5f0", "ens5f0"},
		{"mnt-nic0", "mnt-nic0"},
		{"eth_1", "eth-1-"},
		{"eth.1", "eth-1-"},
		{"ETH1", "eth1-"},
		{"-x-", "x-"},
		{"_", "nic-"},
		{"enp0s31f6.100", "enp0s31f6-100-"},
	} {
		got := DeviceName(tc.ifName)
		if !dnsLabel.MatchString(got) || !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("DeviceName(%q) = %q, want a DNS label starting %q", tc.ifName, got, tc.prefix)
		}
		if tc.ifName == tc.prefix && got != tc.ifName {
			t.Errorf("DeviceName(%q) = %q, want the name itself", tc.ifName, got)
		}
	}
	seen := map[string]string{}
	for _, n := range []string{"eth_1", "eth.1", "eth-1", "ETH-1", "eth1", "ETH1"} {
		d := DeviceName(n)
		if other, dup := seen[d]; dup {
			t.Errorf("%q and %q both named %q", n, other, d)
		}
		seen[d] = n
	}
}

func FuzzDeviceName(f *testing.F) {
	for _, s := range []string{"eth0", "eth_1", "ETH1", "", "-", "a.b.c", "ünï", strings.Repeat("x_", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ifName string) {
		got := DeviceName(ifName)
		if !dnsLabel.MatchString(got) {
			t.Fatalf("DeviceName(%q) = %q, not a DNS label", ifName, got)
		}
		if got != DeviceName(ifName) {
			t.Fatalf("DeviceName(%q) is not stable", ifName)
		}
		if dnsLabel.MatchString(ifName) && got != ifName {
			t.Fatalf("DeviceName(%q) = %q, want the label itself", ifName, got)
		}
	})
}
