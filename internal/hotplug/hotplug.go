// Package hotplug keeps the interfaces of running pods in line with their networks annotation.
// It watches the node's pods (the daemon's informer cache) and hands each pod whose annotation
// changed to a Reconciler — the attach manager, which compares the annotation with the
// sandbox's checkpoint record and plugs or unplugs, and writes the pod's network-status again
// when it differs from the one the record gives. It is level-triggered: a work queue keyed
// by pod, several workers, exponential backoff per pod (one failing pod never holds up the
// others), and a periodic resync of every pod as a safety net for a missed event, a daemon
// restart, a NAD that appeared later or a network-status write given up on. A pod is not
// enqueued when only its network-status changes: another writer of it is corrected at the
// next resync, not fought in a loop.
package hotplug

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/multinet/multinet/internal/attach"
	"github.com/multinet/multinet/internal/selection"
)

// Reconciler applies a pod's networks annotation to its sandboxes (and republishes its
// network-status). An error wrapping
// attach.ErrInvalidEdit is not retried (the annotation must change first); any other is.
type Reconciler interface {
	Reconcile(ctx context.Context, pod *corev1.Pod) error
}

// Observer is told how each reconcile went (metrics).
type Observer func(took time.Duration, err error)

// Settings tune the controller.
type Settings struct {
	Workers    int           // pods reconciled at once
	Resync     time.Duration // every pod is reconciled again this often
	Timeout    time.Duration // bound of one reconcile
	RetryFirst time.Duration // first retry delay of a failing pod; doubles up to RetryMax
	RetryMax   time.Duration
}

// DefaultSettings serve a node of a few hundred pods.
func DefaultSettings() Settings {
	return Settings{Workers: 4, Resync: 5 * time.Minute, Timeout: 3 * time.Minute,
		RetryFirst: 500 * time.Millisecond, RetryMax: 5 * time.Minute}
}

// Controller runs hot plug for the pods of one node.
type Controller struct {
	pods    cache.Indexer
	rec     Reconciler
	queue   workqueue.TypedRateLimitingInterface[string]
	set     Settings
	observe Observer
	log     *slog.Logger
}

// New watches informer's pods and reconciles them through rec. observe may be nil.
func New(informer cache.SharedIndexInformer, rec Reconciler, set Settings, observe Observer, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		pods: informer.GetIndexer(),
		rec:  rec,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](set.RetryFirst, set.RetryMax),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "hotplug"}),
		set:     set,
		observe: observe,
		log:     log,
	}
	_, err := informer.AddEventHandlerWithResyncPeriod(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur any) {
			if changed(old, cur) {
				c.enqueue(cur)
			}
		},
	}, set.Resync)
	return c, err
}

// changed: the networks annotation differs, or this is the informer's periodic resync.
func changed(old, cur any) bool {
	o, ok1 := old.(*corev1.Pod)
	n, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	return o.ResourceVersion == n.ResourceVersion || selection.Raw(o.Annotations) != selection.Raw(n.Annotations)
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

// AfterAdd is attach.Deps.AfterAdd: when the pod's annotation in the cache is no longer the
// one the ADD planned from (edited while the ADD ran), the pod is reconciled right away.
func (c *Controller) AfterAdd(namespace, name, annotation string) {
	obj, ok, err := c.pods.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return
	}
	if pod, isPod := obj.(*corev1.Pod); isPod && selection.Raw(pod.Annotations) != annotation {
		c.queue.Add(namespace + "/" + name)
	}
}

// Run reconciles until ctx ends, with set.Workers workers, and waits for them to stop.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range max(c.set.Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

// next reconciles one pod; false once the queue is shut down.
func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	obj, ok, err := c.pods.GetByKey(key)
	if err != nil || !ok {
		c.queue.Forget(key) // the pod is gone: its sandbox's DEL takes everything
		return true
	}
	pod, isPod := obj.(*corev1.Pod)
	if !isPod {
		c.queue.Forget(key)
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, c.set.Timeout)
	start := time.Now()
	err = c.rec.Reconcile(rctx, pod)
	cancel()
	if c.observe != nil {
		c.observe(time.Since(start), err)
	}
	switch {
	case err == nil:
		c.queue.Forget(key)
	case errors.Is(err, attach.ErrInvalidEdit):
		c.log.Warn("networks annotation cannot be applied; waiting for it to change", "pod", key, "err", err)
		c.queue.Forget(key)
	default:
		c.log.Warn("hot plug failed; retrying with backoff", "pod", key, "retries", c.queue.NumRequeues(key), "err", err)
		c.queue.AddRateLimited(key)
	}
	return true
}
