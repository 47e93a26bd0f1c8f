package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxReviewBytes bounds an AdmissionReview's body: an object is at most 1.5 MiB in etcd, and
// an update carries two.
const maxReviewBytes = 4 << 20

// lookupTimeout bounds the NAD lookups of one review, well inside the webhook's timeout.
const lookupTimeout = 2 * time.Second

// The resources the webhook reviews beside MultiNetworkPolicies (both exist in version v1
// only).
var (
	podsResource = schema.GroupResource{Resource: "pods"}
	nadsResource = nadv1.SchemeGroupVersion.WithResource("network-attachment-definitions").GroupResource()
)

// NADs tells whether a NetworkAttachmentDefinition exists.
type NADs interface {
	Exists(ctx context.Context, namespace, name string) (bool, error)
}

// Handler serves AdmissionReviews (admission.k8s.io/v1) of pods, NADs and
// MultiNetworkPolicies.
type Handler struct {
	NADs NADs
	Log  *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReviewBytes)).Decode(&review); err != nil {
		http.Error(w, "decoding the AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "AdmissionReview without a request", http.StatusBadRequest)
		return
	}
	resp := h.Review(r.Context(), review.Request)
	resp.UID = review.Request.UID
	review.Request, review.Response = nil, resp
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&review); err != nil {
		h.Log.Warn("writing the AdmissionReview response", "err", err)
	}
}

// Review decides on one admission request. Anything but a create or update of a pod, a NAD
// or a MultiNetworkPolicy (their subresources among them) is allowed.
func (h *Handler) Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.SubResource != "" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return allow(nil)
	}
	switch (schema.GroupResource{Group: req.Resource.Group, Resource: req.Resource.Resource}) {
	case podsResource:
		return h.reviewPod(ctx, req)
	case nadsResource:
		return h.reviewNAD(req)
	case policiesResource:
		return h.reviewPolicy(ctx, req)
	}
	return allow(nil)
}

// podMeta is the part of a pod the webhook reads.
type podMeta struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func (h *Handler) reviewPod(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	var pod podMeta
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(fmt.Errorf("pod %s/%s: decoding the object: %w", req.Namespace, req.Name, err))
	}
	annotations := pod.Metadata.Annotations
	if !HasNetworks(annotations) {
		return allow(nil)
	}
	if req.Operation == admissionv1.Update {
		var old podMeta
		if err := json.Unmarshal(req.OldObject.Raw, &old); err == nil && !NetworksChanged(old.Metadata.Annotations, annotations) {
			return allow(nil)
		}
	}
	obj := Object{Kind: "Pod", Namespace: req.Namespace, Name: pod.Metadata.Name}
	if obj.Name == "" {
		obj.Name = pod.Metadata.GenerateName + "*"
	}
	check, err := CheckPod(obj, annotations)
	if err != nil {
		h.Log.Info("refused", "pod", obj.Name, "namespace", obj.Namespace, "operation", req.Operation, "err", err)
		return deny(err)
	}
	consequence := "the pod does not start until it exists"
	if req.Operation == admissionv1.Update {
		consequence = "the network is not attached until it exists"
	}
	return allow(append(check.Warnings, h.missing(ctx, obj, check.Refs, consequence)...))
}

// missing warns of each NAD an object names that does not exist, or that could not be looked
// up: a NAD may be created after the pods and policies that use them; consequence says what
// its absence means for obj.
func (h *Handler) missing(ctx context.Context, obj Object, refs []NADRef, consequence string) []string {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	var warnings []string
	for _, ref := range refs {
		found, err := h.NADs.Exists(ctx, ref.Namespace, ref.Name)
		switch {
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("%s: network %q: NetworkAttachmentDefinition not checked: %v", obj, ref, err))
		case !found:
			warnings = append(warnings, fmt.Sprintf("%s: network %q: NetworkAttachmentDefinition not found: %s", obj, ref, consequence))
		}
	}
	return warnings
}

func (h *Handler) reviewNAD(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	var nad, old nadv1.NetworkAttachmentDefinition
	if err := json.Unmarshal(req.Object.Raw, &nad); err != nil {
		return deny(fmt.Errorf("NetworkAttachmentDefinition %s/%s: decoding the object: %w", req.Namespace, req.Name, err))
	}
	nad.Namespace = req.Namespace
	warnings, err := CheckNAD(&nad)
	if err == nil {
		return allow(warnings)
	}
	if req.Operation == admissionv1.Update && json.Unmarshal(req.OldObject.Raw, &old) == nil && old.Spec.Config == nad.Spec.Config {
		// Left as it was (admitted before the webhook): other fields stay editable.
		return allow([]string{err.Error()})
	}
	h.Log.Info("refused", "networkAttachmentDefinition", nad.Name, "namespace", nad.Namespace, "operation", req.Operation, "err", err)
	return deny(err)
}

func allow(warnings []string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true, Warnings: warnings}
}

// deny refuses with err's text, which the API server shows after `admission webhook "NAME"
// denied the request: `.
func deny(err error) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusUnprocessableEntity,
		Reason:  metav1.StatusReasonInvalid,
		Message: err.Error(),
	}}
}
