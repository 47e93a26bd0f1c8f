package attach

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/status"
)

// tear attaches eth0 and net1..net3 and cuts the sandbox's record file just before the
// attachment on cutAt ("" leaves it empty, as a power loss typically does); it returns the
// torn bytes.
func tear(t *testing.T, w *world, cutAt string) []byte {
	t.Helper()
	if _, err := w.m.attachAll(w.ctx, w.req, w.plan); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(w.m.Store.Dir(), "c1.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if cutAt != "" {
		n = bytes.Index(data, []byte(`"ifName":"`+cutAt+`"`))
	}
	if err := os.WriteFile(p, data[:n], 0o600); err != nil {
		t.Fatal(err)
	}
	return data[:n]
}

func runtimeDel(w *world) error {
	return w.m.Del(w.ctx, &cniapi.Request{Command: "DEL", ContainerID: "c1", IfName: "eth0", Netns: "/var/run/netns/x",
		Args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u"})
}

// TestDelOfATornRecordDetachesWhatCanBeReadAndSetsItAside: the record was torn inside net2's
// attachment. The runtime's DEL succeeds, DELs eth0 and net1 (all that was written whole),
// leaves no record, keeps the torn bytes under corrupt/ and tells the pod.
func TestDelOfATornRecordDetachesWhatCanBeReadAndSetsItAside(t *testing.T) {
	w := newWorld(t, false, newFake())
	torn := tear(t, w, "net2")
	w.f.calls = nil
	if err := runtimeDel(w); err != nil {
		t.Fatalf("DEL of a sandbox whose record is torn: %v", err)
	}
	if !slices.Equal(w.f.calls, []string{"DEL net1", "DEL eth0"}) {
		t.Errorf("DEL calls %v, want net1 then eth0 (net2 and net3 cannot be read)", w.f.calls)
	}
	if _, err := w.m.Store.Load("c1"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Errorf("record after DEL: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(w.m.Store.Dir(), checkpoint.CorruptDir, "c1.json")); err != nil || !bytes.Equal(got, torn) {
		t.Errorf("copy set aside: %q, %v; want the torn record", got, err)
	}
	if !slices.Contains(w.ev.reasons, status.ReasonCheckpointCorrupt) {
		t.Errorf("events %v, want %s", w.ev.reasons, status.ReasonCheckpointCorrupt)
	}
	if err := runtimeDel(w); err != nil {
		t.Errorf("DEL again: %v", err)
	}
}

// TestDelOfAnEmptyRecordSucceeds: a record a power loss left empty says nothing; DEL succeeds
// without calling a plugin, and the pod is known from the runtime's arguments.
func TestDelOfAnEmptyRecordSucceeds(t *testing.T) {
	w := newWorld(t, false, newFake())
	tear(t, w, "")
	w.f.calls = nil
	if err := runtimeDel(w); err != nil {
		t.Fatalf("DEL of a sandbox whose record is empty: %v", err)
	}
	if len(w.f.calls) != 0 {
		t.Errorf("DEL calls %v, want none", w.f.calls)
	}
	if ids, _ := w.m.Store.List(); len(ids) != 0 {
		t.Errorf("records left: %v", ids)
	}
	if !slices.Contains(w.ev.reasons, status.ReasonCheckpointCorrupt) {
		t.Errorf("events %v, want %s on the pod named by the runtime", w.ev.reasons, status.ReasonCheckpointCorrupt)
	}
}

// TestTornRecordWhoseDelFailsIsRetriedFromTheSalvagedRecord: the salvaged record replaces the
// torn one, so a DEL that fails on a recovered network is retried by the next DEL as for a
// sound record.
func TestTornRecordWhoseDelFailsIsRetriedFromTheSalvagedRecord(t *testing.T) {
	w := newWorld(t, false, newFake())
	tear(t, w, "net2")
	w.f.failDel["net1"] = errors.New("plugin is down")
	if err := runtimeDel(w); err == nil {
		t.Fatal("DEL succeeded although net1's DEL failed")
	}
	sb, err := w.m.Store.Load("c1")
	if err != nil || !slices.Equal(ifnamesOf(sb), []string{"net1"}) {
		t.Fatalf("record after the failed DEL: %v, %v; want net1's alone", sb, err)
	}
	delete(w.f.failDel, "net1")
	w.f.calls = nil
	if err := runtimeDel(w); err != nil || !slices.Equal(w.f.calls, []string{"DEL net1"}) {
		t.Errorf("DEL again: %v, calls %v; want net1's DEL", err, w.f.calls)
	}
}
