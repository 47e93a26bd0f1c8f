package webhook

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// Options are multinet-webhook's flags.
type Options struct {
	ListenAddress string
	Kubeconfig    string
	// Namespace and Service name the webhook's Service: its serving certificate is for the
	// Service's DNS names, and the CA Secret is in Namespace.
	Namespace string
	Service   string
	// WebhookConfiguration is the ValidatingWebhookConfiguration whose caBundle the webhook
	// keeps; CASecret the Secret holding the CA the replicas share.
	WebhookConfiguration string
	CASecret             string
	// ExtraHosts are more names or IP addresses for the serving certificate.
	ExtraHosts []string
	// CertFile and KeyFile, when set, are served instead of a generated certificate
	// (cert-manager's); the webhook then neither reads the CA Secret nor sets caBundle.
	CertFile string
	KeyFile  string
	LogLevel string
}

// Parse reads multinet-webhook's flags.
func Parse(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("multinet-webhook", flag.ContinueOnError)
	fs.StringVar(&o.ListenAddress, "listen-address", ":8443", "HTTPS address of /validate, /healthz and /readyz")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty: in-cluster ServiceAccount credentials")
	fs.StringVar(&o.Namespace, "namespace", "multinet", "namespace of the webhook's Service and CA Secret")
	fs.StringVar(&o.Service, "service", "multinet-webhook", "the webhook's Service: the serving certificate is for its DNS names")
	fs.StringVar(&o.WebhookConfiguration, "webhook-configuration", "multinet-webhook", "ValidatingWebhookConfiguration whose caBundle is set to the generated CA")
	fs.StringVar(&o.CASecret, "ca-secret", "multinet-webhook-ca", "Secret (in --namespace) keeping the generated CA the replicas share")
	hosts := fs.String("extra-hosts", "", "comma-separated extra DNS names or IP addresses of the serving certificate")
	fs.StringVar(&o.CertFile, "tls-cert-file", "", "serve this certificate (e.g. cert-manager's tls.crt) instead of generating one; reloaded when it changes")
	fs.StringVar(&o.KeyFile, "tls-key-file", "", "the key of --tls-cert-file")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			o.ExtraHosts = append(o.ExtraHosts, h)
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return Options{}, errors.New("--tls-cert-file and --tls-key-file go together")
	}
	if o.CertFile == "" && (o.Namespace == "" || o.Service == "" || o.WebhookConfiguration == "" || o.CASecret == "") {
		return Options{}, errors.New("--namespace, --service, --webhook-configuration and --ca-secret must not be empty without --tls-cert-file")
	}
	return o, nil
}
