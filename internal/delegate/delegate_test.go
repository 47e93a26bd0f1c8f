package delegate

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentCalls: calls for several networks of one pod run at once through one runner,
// under its bound, and each gets its own answer (the plugin's absence, here).
func TestConcurrentCalls(t *testing.T) {
	r := New([]string{t.TempDir()}, t.TempDir(), 2, 1)
	conf := []byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"absent"}]}`)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Add(context.Background(), &Invocation{ConfList: conf, ContainerID: "c1", Netns: "/x", IfName: "net1"})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "absent") {
			t.Errorf("call %d: %v, want the missing plugin named", i, err)
		}
	}
}
