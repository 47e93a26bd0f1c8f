package certs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bundle intervals: a failed patch is retried soon (the configuration may be applied after
// the webhook started); a patched bundle is checked again now and then (a re-apply with
// `kubectl replace` empties it).
const (
	bundleRetry = 5 * time.Second
	bundleCheck = time.Minute
)

// WebhookConfigurations reads and updates ValidatingWebhookConfigurations; client-go's
// ValidatingWebhookConfigurationInterface is one.
type WebhookConfigurations interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*admissionregistrationv1.ValidatingWebhookConfiguration, error)
	Update(ctx context.Context, c *admissionregistrationv1.ValidatingWebhookConfiguration, opts metav1.UpdateOptions) (*admissionregistrationv1.ValidatingWebhookConfiguration, error)
}

// PatchBundle sets caBundle of every webhook of the configuration name to caPEM, and tells
// whether it changed anything. The update carries the resourceVersion read: a conflict is
// an error, for the caller to retry.
func PatchBundle(ctx context.Context, configs WebhookConfigurations, name string, caPEM []byte) (bool, error) {
	c, err := configs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("ValidatingWebhookConfiguration %s: %w", name, err)
	}
	changed := false
	for i := range c.Webhooks {
		if !bytes.Equal(c.Webhooks[i].ClientConfig.CABundle, caPEM) {
			c.Webhooks[i].ClientConfig.CABundle = caPEM
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	if _, err := configs.Update(ctx, c, metav1.UpdateOptions{FieldManager: "multinet-webhook"}); err != nil {
		return false, fmt.Errorf("ValidatingWebhookConfiguration %s: setting caBundle: %w", name, err)
	}
	return true, nil
}

// KeepBundle keeps caPEM in the configuration's caBundle until ctx ends: retried every few
// seconds until it succeeds, then checked every minute.
func KeepBundle(ctx context.Context, configs WebhookConfigurations, name string, caPEM []byte, log *slog.Logger) {
	failing := false
	for {
		wait := bundleCheck
		changed, err := PatchBundle(ctx, configs, name, caPEM)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				log.Warn("caBundle not set, retrying", "err", err)
			}
			failing, wait = true, bundleRetry
		case changed:
			log.Info("caBundle set", "validatingWebhookConfiguration", name)
			failing = false
		default:
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
