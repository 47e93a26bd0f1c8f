package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/testbed"
)

// TestDelOfATornCheckpoint: a power loss tore a pod sandbox's checkpoint record inside its
// third attachment (green's). The runtime's DEL succeeds: it detaches the cluster network and
// blue (written whole before the tear), keeps a copy of the torn record under
// checkpoints/corrupt/ and posts CheckpointCorrupt naming what it recovered. green, which
// could not be read, keeps its interface and its address: nothing is invented.
func TestDelOfATornCheckpoint(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "blue,green"})
	e.MustAdd(t, sb)
	p := filepath.Join(e.StateDir, "checkpoints", sb.ID+".json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.Index(data, []byte(`{"network":"`+e.ns+`/green"`))
	if cut < 0 {
		t.Fatalf("green's attachment not in the record: %s", data)
	}
	torn := data[:cut+len(`{"network":"`)]
	if err := os.WriteFile(p, torn, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := e.Del(t, sb); err != nil {
		t.Fatalf("DEL of a sandbox whose record is torn: %v\n%s", err, e.Log())
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("the record is still there: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(e.StateDir, "checkpoints", checkpoint.CorruptDir, sb.ID+".json")); err != nil || !bytes.Equal(got, torn) {
		t.Errorf("copy set aside: %q, %v; want the torn record", got, err)
	}
	if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"net2"}) {
		t.Errorf("interfaces after DEL %v, want green's net2 alone (eth0 and blue's net1 detached)", got)
	}
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 1 || !strings.HasPrefix(got[0], "green/") {
		t.Errorf("addresses after DEL %v, want green's alone", got)
	}
	found := false
	for _, ev := range e.WaitEvent(t, sb.Pod, "CheckpointCorrupt") {
		if ev.Reason == "CheckpointCorrupt" {
			found = true
			if ev.Type != "Warning" || !strings.Contains(ev.Message, sb.ID) || !strings.Contains(ev.Message, e.ns+"/blue (net1)") ||
				strings.Contains(ev.Message, "/green") {
				t.Errorf("CheckpointCorrupt %s %q: want a Warning naming the sandbox and blue, not green", ev.Type, ev.Message)
			}
		}
	}
	if !found {
		t.Error("no CheckpointCorrupt Event")
	}
	if !strings.Contains(e.Log(), "corrupt checkpoint record set aside") {
		t.Errorf("daemon log does not say it set the record aside:\n%s", e.Log())
	}
	e.MustDel(t, sb)
}
