package delegate

import (
	"context"
	"fmt"
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

// TestConfListsParsedOnce: the same conflist bytes give the same parsed list (libcni only
// reads it); a bad conflist is an error each time and not kept; the cache stays bounded.
func TestConfListsParsedOnce(t *testing.T) {
	var c confLists
	conf := []byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}`)
	a, err := c.parse(conf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.parse(append([]byte(nil), conf...))
	if err != nil || a != b {
		t.Fatalf("second parse: %p, %v; want the first list %p", b, err, a)
	}
	if a.Name != "n" || len(a.Plugins) != 1 || a.Plugins[0].Network.Type != "bridge" {
		t.Fatalf("parsed %+v", a)
	}
	for range 2 {
		if _, err := c.parse([]byte(`{"name":`)); err == nil {
			t.Fatal("a truncated conflist parsed")
		}
	}
	for i := range 2 * maxConfLists {
		if _, err := c.parse([]byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"n%d","plugins":[{"type":"bridge"}]}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.parsed) > maxConfLists {
		t.Errorf("%d conflists kept, want at most %d", len(c.parsed), maxConfLists)
	}
}
