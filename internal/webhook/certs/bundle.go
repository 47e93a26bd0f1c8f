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

// Keeper keeps the replicas' CA, serving certificates and caBundle in agreement, with the
// CA Secret as the one source: each round reads it (filling it when empty), signs a new
// serving certificate if the CA changed (the Secret was emptied to rotate it, or another
// replica filled it first), and sets caBundle.
type Keeper struct {
	Secrets       Secrets
	SecretName    string
	Configs       WebhookConfigurations
	Configuration string
	Serving       *Generated
	Log           *slog.Logger
}

// Run keeps them until ctx ends: a failed round is retried after a few seconds (the
// configuration may be applied after the webhook started), a good one repeated every minute
// (a `kubectl replace` of the configuration empties caBundle).
func (k *Keeper) Run(ctx context.Context) {
	failing := false
	for {
		wait := bundleCheck
		if err := k.round(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				k.Log.Warn("caBundle or CA not kept, retrying", "err", err)
			}
			failing, wait = true, bundleRetry
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (k *Keeper) round(ctx context.Context) error {
	now := time.Now()
	ca, err := LoadCA(ctx, k.Secrets, k.SecretName, now)
	if err != nil {
		return err
	}
	if changed, err := k.Serving.UseCA(ca, now); err != nil {
		return err
	} else if changed {
		k.Log.Info("serving certificate signed by the CA of the Secret", "secret", k.SecretName, "notAfter", ca.Cert.NotAfter)
	}
	changed, err := PatchBundle(ctx, k.Configs, k.Configuration, ca.CertPEM)
	if err != nil {
		return err
	}
	if changed {
		k.Log.Info("caBundle set", "validatingWebhookConfiguration", k.Configuration)
	}
	return nil
}
