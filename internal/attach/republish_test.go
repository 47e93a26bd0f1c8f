package attach

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/status"
)

// recordedStatus is a StatusWriter that keeps the values it was given.
type recordedStatus struct {
	mu     sync.Mutex
	values []string
}

func (r *recordedStatus) Set(_ status.PodRef, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values = append(r.values, value)
}

// republishWorld is a manager whose store holds the records of pod ns/p (uid "u"), each with
// eth0 of the cluster network added, in a netns that exists (a file will do: live checks it).
type republishWorld struct {
	m      *Manager
	status *recordedStatus
	dir    string
}

// eth0Status is the network-status the records of republishWorld give.
const eth0Status = `[{"name":"cluster","interface":"eth0","ips":["10.244.0.5"],"default":true}]`

func newRepublishWorld(t *testing.T, ids ...string) *republishWorld {
	t.Helper()
	dir := t.TempDir()
	store, err := checkpoint.Open(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	w := &republishWorld{status: &recordedStatus{}, dir: dir}
	w.m = New(Config{}, Deps{Store: store.WithoutSync(), Annotations: w.status, Events: &fakeEvents{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, id := range ids {
		netns := filepath.Join(dir, "netns-"+id)
		if err := os.WriteFile(netns, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		result, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0",
			"interfaces": []map[string]string{{"name": "eth0", "sandbox": netns}},
			"ips":        []map[string]any{{"address": "10.244.0.5/16", "interface": 0}}})
		sb := &checkpoint.Sandbox{ContainerID: id, Netns: netns, PodNamespace: "ns", PodName: "p", PodUID: "u",
			Attachments: []checkpoint.Attachment{{Network: "cluster", Default: true, IfName: "eth0", ConfList: []byte("{}"),
				State: checkpoint.Added, Result: result}}}
		if err := store.Save(sb); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// pod is the informer's copy of ns/p with network-status value ("" for none).
func (w *republishWorld) pod(value string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: k8stypes.UID("u")}}
	if value != "" {
		p.Annotations = map[string]string{status.Annotation: value}
	}
	return p
}

// both runs the hot plug reconcile and the republish of a daemon with hot plug off.
func (w *republishWorld) both(t *testing.T, pod *corev1.Pod) []string {
	t.Helper()
	if err := w.m.Reconcile(context.Background(), pod); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	w.m.Republish(pod)
	return w.status.values
}

// TestReconcileRepublishesWhatThePodLacks: with nothing to plug or unplug, the network-status
// the record gives is written when the pod's says something else, and only then.
func TestReconcileRepublishesWhatThePodLacks(t *testing.T) {
	for _, c := range []struct {
		name, current string
		republished   bool
	}{
		{"missing (lost at a stop, given up on)", "", true},
		{"the same", eth0Status, false},
		{"the same, written otherwise", `[ {"default":true, "ips":["10.244.0.5"], "interface":"eth0", "name":"cluster", "dns":{}} ]`, false},
		{"another address", `[{"name":"cluster","interface":"eth0","ips":["10.244.0.9"],"default":true}]`, true},
		{"not JSON", "{", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newRepublishWorld(t, "c1")
			got := w.both(t, w.pod(c.current))
			want := 0
			if c.republished {
				want = 2 // once by Reconcile, once by Republish
			}
			if len(got) != want {
				t.Fatalf("values written = %q, want %d", got, want)
			}
			for _, v := range got {
				if v != eth0Status {
					t.Errorf("value written = %s, want %s", v, eth0Status)
				}
			}
		})
	}
}

// TestNoRepublishWhereTheRecordIsNotTheTruth: a sandbox whose netns is gone, a pod with two
// records (the runtime's DEL of one pending: which is current is not known) and a pod being
// deleted get nothing written.
func TestNoRepublishWhereTheRecordIsNotTheTruth(t *testing.T) {
	t.Run("netns gone", func(t *testing.T) {
		w := newRepublishWorld(t, "c1")
		if err := os.Remove(filepath.Join(w.dir, "netns-c1")); err != nil {
			t.Fatal(err)
		}
		if got := w.both(t, w.pod("")); len(got) != 0 {
			t.Errorf("values written = %q, want none", got)
		}
	})
	t.Run("two records", func(t *testing.T) {
		w := newRepublishWorld(t, "c1", "c2")
		if got := w.both(t, w.pod("")); len(got) != 0 {
			t.Errorf("values written = %q, want none", got)
		}
	})
	t.Run("pod being deleted", func(t *testing.T) {
		w := newRepublishWorld(t, "c1")
		pod := w.pod("")
		pod.DeletionTimestamp = &metav1.Time{}
		if got := w.both(t, pod); len(got) != 0 {
			t.Errorf("values written = %q, want none", got)
		}
	})
}
