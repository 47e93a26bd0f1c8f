package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/multinet/multinet/internal/dra/claims"
)

// fakeAPI stands in for the API server's apply of claim status: it fails with err while err
// is set, and records what it wrote.
type fakeAPI struct {
	mu      sync.Mutex
	err     error
	written map[string][]resourcev1.AllocatedDeviceStatus // by claim name
}

func (f *fakeAPI) apply(_ context.Context, claim claims.ClaimRef, entries []resourcev1.AllocatedDeviceStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.written[claim.Name] = entries
	return nil
}

func (f *fakeAPI) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeAPI) wrote(name string) ([]resourcev1.AllocatedDeviceStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.written[name]
	return e, ok
}

func newTestClaims(dir string, api *fakeAPI) *claimsClient {
	return &claimsClient{dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil)), kick: make(chan struct{}, 1), apply: api.apply}
}

// TestClaimStatusKeptUntilItPasses: a status write that fails while the API server is down is
// kept on disk and written once it is back, also by the next daemon after a restart; a
// refused one (invalid) is not kept; a later write of the claim replaces the kept one.
func TestClaimStatusKeptUntilItPasses(t *testing.T) {
	dir := t.TempDir()
	api := &fakeAPI{written: map[string][]resourcev1.AllocatedDeviceStatus{}}
	down := errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	api.set(down)
	c := newTestClaims(dir, api)
	ref := claims.ClaimRef{Namespace: "ns", Name: "db-nic", UID: "u1"}
	entry := []resourcev1.AllocatedDeviceStatus{{Driver: "nic.multinet.io", Pool: "node-a", Device: "mnnic0"}}
	err := c.ApplyStatus(context.Background(), ref, entry)
	if !errors.Is(err, down) {
		t.Fatalf("ApplyStatus: %v, want the API error", err)
	}
	kept := filepath.Join(dir, "ns_db-nic.json")
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("failed write not kept: %v", err)
	}
	// The clear (DEL) fails too: it replaces the kept write.
	if err := c.ApplyStatus(context.Background(), ref, nil); !errors.Is(err, down) {
		t.Fatalf("ApplyStatus: %v", err)
	}
	// A restart: the next daemon's client retries what is kept once the API server is back.
	api.set(nil)
	c = newTestClaims(dir, api)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.retry(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got, ok := api.wrote("db-nic"); ok {
			if len(got) != 0 {
				t.Fatalf("retried write %v, want the clear asked last", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("kept write never retried")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(kept); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("kept write still there after it passed")
		}
	}
	// Refused for what it is: not kept.
	api.set(apierrors.NewInvalid(schema.GroupKind{Group: "resource.k8s.io", Kind: "ResourceClaim"}, "db-nic",
		field.ErrorList{field.Invalid(field.NewPath("status", "devices"), "x", "must be an allocated device in the claim")}))
	if err := c.ApplyStatus(context.Background(), ref, entry); !apierrors.IsInvalid(err) {
		t.Fatalf("ApplyStatus: %v, want the refusal", err)
	}
	if _, err := os.Stat(kept); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused write kept: %v", err)
	}
}
