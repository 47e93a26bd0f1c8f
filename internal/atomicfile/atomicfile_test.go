package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, durable := range []bool{true, false} {
		for _, content := range []string{"one", "two"} {
			if err := Write(path, []byte(content), 0o640, durable); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != content {
				t.Fatalf("read %q, %v; want %q", got, err, content)
			}
			if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
				t.Fatalf("mode %v", info.Mode())
			}
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, TempPattern)); len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, ".f.123.tmp")
	keep := filepath.Join(dir, "f")
	for _, p := range []string{left, keep} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	RemoveTemps(dir)
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("%s still there", left)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("%s removed", keep)
	}
}
