// Package status reports what multinet did to a pod back to the API: the
// k8s.v1.cni.cncf.io/network-status annotation and pod Events.
//
// Build turns the CNI results of a pod's attachments into the annotation's
// value; it is a pure function of its input. Patcher writes that value in the
// background with retries, so the CNI ADD path never waits on the API server
// and never fails because of it; Drain writes what is pending before the
// daemon stops, and Same tells whether the annotation a pod has says what the
// daemon would write. NewEventRecorder posts core/v1 Events about
// pods, aggregated and rate-limited by client-go.
package status
