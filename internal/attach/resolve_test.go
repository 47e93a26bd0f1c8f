package attach

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetectDefaultSeesEveryChange: the cluster network's conf is cached between ADDs, yet a
// file rewritten in place (even to the same size), replaced by one that runs the shim, or
// removed is seen at the next call.
func TestDetectDefaultSeesEveryChange(t *testing.T) {
	dir := t.TempDir()
	conf := func(name, typ string) string {
		return `{"cniVersion":"1.0.0","name":"` + name + `","type":"` + typ + `"}`
	}
	write := func(file, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := func(step, name string) {
		t.Helper()
		for range 2 { // the second call is served from the cache
			n, err := DetectDefault(dir, "00-multinet.conflist")
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if n.Key != name || !strings.Contains(string(n.ConfList), `"name":"`+name+`"`) {
				t.Fatalf("%s: default network %q (%s), want %q", step, n.Key, n.ConfList, name)
			}
			n.ConfList[0] = 'X' // the caller's copy: the cache must not see this
		}
	}
	write("10-a.conf", conf("aaaa", "bridge"))
	write("20-b.conf", conf("bbbb", "bridge"))
	want("first", "aaaa")
	write("10-a.conf", conf("cccc", "bridge")) // same size, in place
	want("rewritten in place", "cccc")
	write("10-a.conf", conf("dddd", ShimType))
	want("now runs the shim", "bbbb")
	if err := os.Remove(filepath.Join(dir, "10-a.conf")); err != nil {
		t.Fatal(err)
	}
	write("20-b.conf", conf("eeee", "macvlan"))
	want("removed, the next rewritten", "eeee")
}
