package keylock

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestOneHolderPerKeyAndNoGrowth(t *testing.T) {
	var locks Locks
	var inside [2]atomic.Int32
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{"a", "b"}[i%2]
			unlock := locks.Lock(key)
			if n := inside[i%2].Add(1); n != 1 {
				t.Errorf("%d holders of %q at once", n, key)
			}
			inside[i%2].Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if n := locks.Len(); n != 0 {
		t.Fatalf("%d keys kept after every holder left", n)
	}
}
