package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSaveLoadRemove(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sb := &Sandbox{ContainerID: "abc123", Netns: "/run/netns/x", PodNamespace: "ns", PodName: "p", PodUID: "u",
		Attachments: []Attachment{{Network: "ns/a", IfName: "net1", ConfList: []byte(`{"a":1}`), State: Adding,
			Args: [][2]string{{"K", "V"}}}}}
	if err := s.Save(sb); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("abc123")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sb) {
		t.Fatalf("loaded %+v, saved %+v", got, sb)
	}
	ids, err := s.List()
	if err != nil || !reflect.DeepEqual(ids, []string{"abc123"}) {
		t.Fatalf("List = %v, %v", ids, err)
	}
	if err := s.Remove("abc123"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("abc123"); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if _, err := s.Load("abc123"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load after Remove: %v, want ErrNotFound", err)
	}
}

func TestRejectsPathEscapingIDs(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "../x", "a/b", ".hidden", "a..b"} {
		if err := s.Save(&Sandbox{ContainerID: id}); err == nil {
			t.Errorf("Save(%q) accepted", id)
		}
		if _, err := s.Load(id); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Load(%q) = %v, want a validation error", id, err)
		}
	}
}

func TestCorruptRecordIsAnErrorNotEmpty(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c1.json"), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("c1"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Load of a corrupt record = %v, want a corruption error", err)
	}
}

func TestOpenRemovesCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, ".c1.json.123.tmp")
	if err := os.WriteFile(leftover, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temp file still there: %v", err)
	}
}

// TestByPod: the index follows saves and removals, and is rebuilt from disk by Open.
func TestByPod(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range []*Sandbox{{ContainerID: "b", PodUID: "u1"}, {ContainerID: "a", PodUID: "u1"},
		{ContainerID: "c", PodUID: "u2"}, {ContainerID: "d"}} {
		if err := s.Save(sb); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.ByPod("u1"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("ByPod(u1) = %v, want [a b]", got)
	}
	if err := s.Remove("a"); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []*Store{s, reopened} {
		if got := st.ByPod("u1"); !reflect.DeepEqual(got, []string{"b"}) {
			t.Errorf("ByPod(u1) after removing a = %v, want [b]", got)
		}
		if got := st.ByPod("u2"); !reflect.DeepEqual(got, []string{"c"}) {
			t.Errorf("ByPod(u2) = %v, want [c]", got)
		}
		if got := st.ByPod(""); len(got) != 0 {
			t.Errorf("records without a pod are indexed: %v", got)
		}
	}
}
