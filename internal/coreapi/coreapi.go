// Package coreapi is the part of the Kubernetes core/v1 API that multinetd calls (pods, nodes,
// Events) over one REST client whose scheme holds core/v1 alone.
//
// client-go's typed core/v1 client registers every built-in API group in its scheme when the
// program starts: in multinetd that was ~7 MiB of resident memory (code and data paged in by
// the registration, and the scheme's maps) for groups the daemon never calls.
package coreapi

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Scheme knows core/v1 and the meta/v1 options; Event recorders use it to name a pod's kind.
var Scheme = runtime.NewScheme()

var (
	codecs         = serializer.NewCodecFactory(Scheme)
	parameterCodec = runtime.NewParameterCodec(Scheme)
)

func init() {
	utilruntime.Must(corev1.AddToScheme(Scheme))
}

// Client calls the core/v1 API. It speaks protobuf, which decodes pods with fewer
// allocations than JSON. Its errors are the API server's (k8s.io/apimachinery/pkg/api/errors
// tells them apart), unwrapped.
type Client struct {
	rc *rest.RESTClient
}

// New returns a Client for the API server of cfg, which it does not change.
func New(cfg *rest.Config) (*Client, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = codecs.WithoutConversion()
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &Client{rc: rc}, nil
}

// ListPods lists the pods of namespace ("" for all).
func (c *Client) ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error) {
	l := &corev1.PodList{}
	err := c.rc.Get().Namespace(namespace).Resource("pods").VersionedParams(&opts, parameterCodec).Do(ctx).Into(l)
	return l, err
}

// WatchPods watches the pods of namespace ("" for all).
func (c *Client) WatchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().Namespace(namespace).Resource("pods").VersionedParams(&opts, parameterCodec).Watch(ctx)
}

// GetPod reads one pod.
func (c *Client) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	err := c.rc.Get().Namespace(namespace).Resource("pods").Name(name).Do(ctx).Into(pod)
	return pod, err
}

// PatchPod applies a patch of type pt to a pod and drops the pod the server answers with.
func (c *Client) PatchPod(ctx context.Context, namespace, name string, pt types.PatchType, patch []byte) error {
	return c.rc.Patch(pt).Namespace(namespace).Resource("pods").Name(name).Body(patch).Do(ctx).Error()
}

// EventSink returns a sink for client-go's Event broadcaster (k8s.io/client-go/tools/record)
// that writes each Event in its own namespace.
func (c *Client) EventSink() EventSink { return EventSink{c.rc} }

// EventSink writes Events for an Event broadcaster: it creates, updates and patches them
// (strategic merge patches, as the broadcaster makes them) in the Event's namespace.
type EventSink struct{ rc *rest.RESTClient }

// Create posts a new Event.
func (s EventSink) Create(e *corev1.Event) (*corev1.Event, error) {
	out := &corev1.Event{}
	err := s.rc.Post().Namespace(e.Namespace).Resource("events").Body(e).Do(context.Background()).Into(out)
	return out, err
}

// Update replaces an Event.
func (s EventSink) Update(e *corev1.Event) (*corev1.Event, error) {
	out := &corev1.Event{}
	err := s.rc.Put().Namespace(e.Namespace).Resource("events").Name(e.Name).Body(e).Do(context.Background()).Into(out)
	return out, err
}

// Patch patches an Event (the broadcaster raises the count of a repeated one this way).
func (s EventSink) Patch(e *corev1.Event, patch []byte) (*corev1.Event, error) {
	out := &corev1.Event{}
	err := s.rc.Patch(types.StrategicMergePatchType).Namespace(e.Namespace).Resource("events").Name(e.Name).
		Body(patch).Do(context.Background()).Into(out)
	return out, err
}
