package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/multinet/multinet/internal/webhook/certs"
)

// Path is where the webhook serves AdmissionReviews.
const Path = "/validate"

// shutdownGrace is how long reviews in flight get after ctx ends.
const shutdownGrace = 5 * time.Second

// Run listens on o.ListenAddress and serves until ctx ends.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	ln, err := net.Listen("tcp", o.ListenAddress)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.ListenAddress, err)
	}
	return Serve(ctx, ln, o, log)
}

// Serve serves the webhook over TLS on ln until ctx ends: the certificate is generated (its
// CA kept in the CA Secret and in the webhook configuration's caBundle) or read from files.
func Serve(ctx context.Context, ln net.Listener, o Options, log *slog.Logger) error {
	defer func() { _ = ln.Close() }() // closed by Shutdown already, or unused on error
	cfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	nads, err := nadclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("network-attachment-definition client: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the certificate's goroutines
	getCert, err := certificate(ctx, client, o, log)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(Path, &Handler{NADs: nadLookup{nads}, Log: log})
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert},
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug), // TLS handshake noise
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer scancel()
		_ = srv.Shutdown(sctx) // past the grace, connections are dropped: the API server retries or ignores
	}()
	log.Info("multinet-webhook serving", "address", ln.Addr().String(), "path", Path)
	err = srv.ServeTLS(ln, "", "")
	cancel()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// certificate returns the serving certificate's source and starts what keeps it valid.
func certificate(ctx context.Context, client kubernetes.Interface, o Options, log *slog.Logger) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	if o.CertFile != "" {
		f, err := certs.NewFiles(o.CertFile, o.KeyFile, log)
		if err != nil {
			return nil, err
		}
		return f.GetCertificate, nil
	}
	now := time.Now()
	ca, err := certs.LoadCA(ctx, client.CoreV1().Secrets(o.Namespace), o.CASecret, now)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", o.Namespace, err)
	}
	gen, err := certs.NewGenerated(ca, append(certs.ServiceHosts(o.Service, o.Namespace), o.ExtraHosts...), now)
	if err != nil {
		return nil, err
	}
	go gen.Renew(ctx, log)
	go certs.KeepBundle(ctx, client.AdmissionregistrationV1().ValidatingWebhookConfigurations(), o.WebhookConfiguration, ca.CertPEM, log)
	return gen.GetCertificate, nil
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }

// nadLookup asks the API server: a NAD created just before its pod is found.
type nadLookup struct{ client nadclient.Interface }

func (l nadLookup) Exists(ctx context.Context, namespace, name string) (bool, error) {
	_, err := l.client.K8sCniCncfIoV1().NetworkAttachmentDefinitions(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, err
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes credentials (use --kubeconfig outside a cluster): %w", err)
	}
	cfg.UserAgent = "multinet-webhook"
	return cfg, nil
}
