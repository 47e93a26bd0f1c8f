package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestEveryWriteWaitsForTheDisk: progress (Update) is written as durably as intent (Save),
// since a rename that never reached the disk can come back torn after a power loss; with
// WithoutSync neither waits.
func TestEveryWriteWaitsForTheDisk(t *testing.T) {
	for _, sync := range []bool{true, false} {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if !sync {
			s.WithoutSync()
		}
		var durable []bool
		s.write = func(path string, data []byte, mode os.FileMode, d bool) error {
			durable = append(durable, d)
			return os.WriteFile(path, data, mode)
		}
		sb := &Sandbox{ContainerID: "c1", Attachments: []Attachment{{IfName: "net1", State: Adding}}}
		if err := s.Save(sb); err != nil {
			t.Fatal(err)
		}
		sb.Attachments[0].State = Added
		if err := s.Update(sb); err != nil {
			t.Fatal(err)
		}
		if want := []bool{sync, sync}; !reflect.DeepEqual(durable, want) {
			t.Errorf("sync %v: Save then Update wrote durably %v, want %v", sync, durable, want)
		}
	}
}

// tornRecord is a record of two attachments, as Save writes it.
func tornRecord(t testing.TB) (*Sandbox, []byte) {
	t.Helper()
	sb := &Sandbox{ContainerID: "c1", Netns: "/run/netns/x", PodNamespace: "ns", PodName: "web", PodUID: "u1",
		Attachments: []Attachment{
			{Network: "ns/a", IfName: "net1", ConfList: json.RawMessage(`{"type":"macvlan","x":[1,{"y":"}"}]}`),
				Args: [][2]string{{"K", "V"}}, State: Added, Result: json.RawMessage(`{"ips":[]}`)},
			{Network: "ns/b", IfName: "net2", ConfList: json.RawMessage(`{"type":"bridge"}`), State: Adding}}}
	data, err := json.Marshal(sb)
	if err != nil {
		t.Fatal(err)
	}
	return sb, data
}

// TestLoadOfATornRecordSalvagesWhatWasWrittenWhole: a record cut at any byte is a
// CorruptError whose salvaged sandbox has the fields and the attachments written in full
// before the cut, exactly, and nothing else.
func TestLoadOfATornRecordSalvagesWhatWasWrittenWhole(t *testing.T) {
	full, data := tornRecord(t)
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	attEnd := []int{bytes.Index(data, []byte(`},{"network":"ns/b"`)) + 1, len(data) - 2}
	for n := 0; n < len(data); n++ {
		if err := os.WriteFile(filepath.Join(dir, "c1.json"), data[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load("c1")
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.ID != "c1" || !bytes.Equal(ce.Raw, data[:n]) {
			t.Fatalf("cut at %d: Load = %v, want a CorruptError with the raw record", n, err)
		}
		got := ce.Salvaged
		want := 0
		for _, end := range attEnd {
			if n >= end {
				want++
			}
		}
		if len(got.Attachments) != want || !reflect.DeepEqual(got.Attachments, full.Attachments[:want]) && want > 0 {
			t.Fatalf("cut at %d: salvaged attachments %+v, want the first %d whole", n, got.Attachments, want)
		}
		if got.ContainerID != "c1" {
			t.Fatalf("cut at %d: salvaged container ID %q", n, got.ContainerID)
		}
		if podEnd := bytes.Index(data, []byte(`,"attachments"`)); n >= podEnd &&
			(got.PodName != "web" || got.PodNamespace != "ns" || got.PodUID != "u1" || got.Netns != "/run/netns/x") {
			t.Fatalf("cut at %d (after the pod's fields): salvaged %+v", n, got)
		}
	}
}

// TestSetAsideKeepsACopyOutOfTheRecords: the copy is under corrupt/, is not a record, and
// the record stays until the caller replaces it.
func TestSetAsideKeepsACopyOutOfTheRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c1.json"), []byte(`{"containerID":"c1","podNa`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load("c1")
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Load = %v, want a CorruptError", err)
	}
	p, err := s.SetAside(ce)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != string(ce.Raw) || p != filepath.Join(dir, CorruptDir, "c1.json") {
		t.Errorf("set aside at %s: %q, %v", p, got, err)
	}
	if ids, err := s.List(); err != nil || !reflect.DeepEqual(ids, []string{"c1"}) {
		t.Errorf("records %v, %v; want c1 alone", ids, err)
	}
}

func FuzzSalvage(f *testing.F) {
	_, data := tornRecord(f)
	for _, seed := range [][]byte{data, data[:len(data)/2], nil, []byte(`[]`), []byte(`{"attachments":[{},`)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sb := salvage(b)
		var whole Sandbox
		if json.Unmarshal(b, &whole) == nil && len(whole.Attachments) != len(sb.Attachments) {
			t.Errorf("a valid record salvages %d attachments of %d", len(sb.Attachments), len(whole.Attachments))
		}
	})
}
