package certs

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Keys of the CA Secret's data.
const (
	CACertKey = "ca.crt"
	CAKeyKey  = "ca.key"
)

// Secrets reads and updates Secrets of one namespace; client-go's SecretInterface is one.
type Secrets interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
	Update(ctx context.Context, secret *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error)
}

// LoadCA returns the CA kept in the Secret name, which must exist (deploy/webhook ships it
// empty, so the webhook needs no right to create Secrets). An empty Secret gets a new CA; of
// replicas racing to fill it, the first update wins (resourceVersion) and the others read
// its CA back. An expired CA is replaced (a CA lasts CALifetime; to rotate it earlier, empty
// the Secret and restart the replicas).
func LoadCA(ctx context.Context, secrets Secrets, name string, now time.Time) (*CA, error) {
	const attempts = 3
	var lastErr error
	for range attempts {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("CA Secret %s: %w", name, err)
		}
		if ca, err := ParseCA(s.Data[CACertKey], s.Data[CAKeyKey]); err == nil && now.Before(ca.Cert.NotAfter) {
			return ca, nil
		}
		ca, err := NewCA("multinet-webhook-ca", now)
		if err != nil {
			return nil, err
		}
		s.Data = map[string][]byte{CACertKey: ca.CertPEM, CAKeyKey: ca.KeyPEM}
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: "multinet-webhook"})
		if err == nil {
			return ca, nil
		}
		if !apierrors.IsConflict(err) {
			return nil, fmt.Errorf("CA Secret %s: storing a new CA: %w", name, err)
		}
		lastErr = err // another replica stored its CA first: read that one
	}
	return nil, fmt.Errorf("CA Secret %s: %d conflicting updates: %w", name, attempts, lastErr)
}
