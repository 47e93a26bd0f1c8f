package testbed

import (
	"errors"
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// NewNetNS creates a named network namespace standing in for a pod sandbox, and closes and
// unmounts it in t.Cleanup (unless the test removed it already, as a runtime does when a
// sandbox goes). It needs root.
func NewNetNS(t testing.TB) ns.NetNS {
	t.Helper()
	netns, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("testbed: creating a network namespace: %v", err)
	}
	t.Cleanup(func() {
		path := netns.Path()
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
		if err := netns.Close(); err != nil {
			t.Errorf("testbed: closing netns %s: %v", path, err)
		}
		if err := testutils.UnmountNS(netns); err != nil {
			t.Errorf("testbed: unmounting netns %s: %v", path, err)
		}
	})
	return netns
}
