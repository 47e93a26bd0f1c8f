package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/multinet/multinet/internal/kubeconfig"
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
	cfg, err := kubeconfig.RESTConfig(o.Kubeconfig, "multinet-webhook")
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
	getCert, loops, err := certificate(ctx, client, o, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, loop := range loops {
		wg.Go(func() { loop(ctx) })
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
	wg.Go(func() {
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer scancel()
		_ = srv.Shutdown(sctx) // past the grace, connections are dropped: the API server retries or ignores
	})
	log.Info("multinet-webhook serving", "address", ln.Addr().String(), "path", Path)
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	}
	return nil
}

// getCertificate is tls.Config.GetCertificate.
type getCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error)

// certificate returns the serving certificate's source and the loops that keep it valid,
// for the caller to run until it stops serving.
func certificate(ctx context.Context, client kubernetes.Interface, o Options, log *slog.Logger) (getCertificate, []func(context.Context), error) {
	if o.CertFile != "" {
		f, err := certs.NewFiles(o.CertFile, o.KeyFile, log)
		if err != nil {
			return nil, nil, err
		}
		return f.GetCertificate, nil, nil
	}
	now := time.Now()
	secrets := client.CoreV1().Secrets(o.Namespace)
	ca, err := certs.LoadCA(ctx, secrets, o.CASecret, now)
	if err != nil {
		return nil, nil, fmt.Errorf("namespace %s: %w", o.Namespace, err)
	}
	gen, err := certs.NewGenerated(ca, append(certs.ServiceHosts(o.Service, o.Namespace), o.ExtraHosts...), now)
	if err != nil {
		return nil, nil, err
	}
	keeper := &certs.Keeper{
		Secrets: secrets, SecretName: o.CASecret,
		Configs: client.AdmissionregistrationV1().ValidatingWebhookConfigurations(), Configuration: o.WebhookConfiguration,
		Serving: gen, Log: log,
	}
	renew := func(ctx context.Context) { gen.Renew(ctx, log) }
	return gen.GetCertificate, []func(context.Context){renew, keeper.Run}, nil
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
