package wire_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/cniapi/wire"
	"github.com/multinet/multinet/internal/server"
)

// daemon is the daemon's side in this test: it records the request and answers from fields.
type daemon struct {
	got    cniapi.Request
	result json.RawMessage
	err    error
}

func (d *daemon) Add(_ context.Context, r *cniapi.Request) (json.RawMessage, error) {
	d.got = *r
	return d.result, d.err
}
func (d *daemon) Del(_ context.Context, r *cniapi.Request) error    { d.got = *r; return d.err }
func (d *daemon) Check(_ context.Context, r *cniapi.Request) error  { d.got = *r; return d.err }
func (d *daemon) GC(_ context.Context, r *cniapi.Request) error     { d.got = *r; return d.err }
func (d *daemon) Status(_ context.Context, r *cniapi.Request) error { d.got = *r; return d.err }

func toCNI(err error) *types.Error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return &types.Error{Code: types.ErrInternal, Msg: err.Error()}
}

// serve runs h as an HTTP server on a fresh unix socket and returns the socket's path.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

var sample = wire.Request{Command: "ADD", ContainerID: "c1", Netns: "/run/netns/x", IfName: "eth0",
	Args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web\"\n", Path: "/opt/cni/bin",
	Config: []byte(`{"cniVersion":"1.0.0", "name":"multinet"}`)}

// TestRequestIsCniapiRequest: the hand-written encoding is cniapi.Request's, field for field.
func TestRequestIsCniapiRequest(t *testing.T) {
	var got cniapi.Request
	if err := json.Unmarshal(sample.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	want := cniapi.Request{Command: sample.Command, ContainerID: sample.ContainerID, Netns: sample.Netns,
		IfName: sample.IfName, Args: sample.Args, Path: sample.Path, Config: sample.Config}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
	wt, ct := reflect.TypeFor[wire.Request](), reflect.TypeFor[cniapi.Request]()
	if wt.NumField() != ct.NumField() {
		t.Fatalf("wire.Request has %d fields, cniapi.Request %d", wt.NumField(), ct.NumField())
	}
	for i := range wt.NumField() {
		if wt.Field(i).Name != ct.Field(i).Name {
			t.Errorf("field %d: wire.Request.%s, cniapi.Request.%s", i, wt.Field(i).Name, ct.Field(i).Name)
		}
	}
}

// TestPostToTheDaemonsHandler: the shim's client against internal/server, a result of a
// MiB (chunked by net/http) and a CNI error.
func TestPostToTheDaemonsHandler(t *testing.T) {
	big := json.RawMessage(`{"cniVersion":"1.0.0","dns":{"search":["` + strings.Repeat("a", 1<<20) + `"]}}`)
	d := &daemon{result: big}
	sock := serve(t, server.New(d, toCNI, nil, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil))))
	reply, err := wire.Post(ctx(t), sock, wire.Path, sample.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	result, cniErr, err := wire.ParseResponse(reply)
	if err != nil || cniErr != nil || !bytes.Equal(result, big) {
		t.Fatalf("result of %d bytes, error %s, %v; want the %d bytes", len(result), cniErr, err, len(big))
	}
	if d.got.Args != sample.Args || string(d.got.Config) != string(sample.Config) {
		t.Errorf("daemon received %+v", d.got)
	}

	want := types.Error{Code: 7, Msg: "pod ns/web: network \"x\" not found", Details: "d"}
	d.err = &want
	reply, err = wire.Post(ctx(t), sock, wire.Path, sample.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	result, cniErr, err = wire.ParseResponse(reply)
	var got types.Error
	if err != nil || result != nil || json.Unmarshal(cniErr, &got) != nil || got != want {
		t.Fatalf("result %s, error %s, %v; want %+v", result, cniErr, err, want)
	}
}

// TestPostReadsEveryFraming: Content-Length, chunked, and a body ended by the connection.
func TestPostReadsEveryFraming(t *testing.T) {
	body := strings.Repeat("x", 100000)
	for name, h := range map[string]http.HandlerFunc{
		"content-length": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "100000")
			_, _ = io.WriteString(w, body)
		},
		"chunked": func(w http.ResponseWriter, _ *http.Request) {
			for i := 0; i < len(body); i += 3000 {
				_, _ = io.WriteString(w, body[i:min(i+3000, len(body))])
				w.(http.Flusher).Flush()
			}
		},
	} {
		got, err := wire.Post(ctx(t), serve(t, h), "/cni", []byte(`{}`))
		if err != nil || string(got) != body {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	sock := rawDaemon(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"+body)
	if got, err := wire.Post(ctx(t), sock, "/cni", []byte(`{}`)); err != nil || string(got) != body {
		t.Errorf("until close: %d bytes, %v", len(got), err)
	}
}

// TestPostErrors: an HTTP error status and a daemon that closes before the answer is whole.
func TestPostErrors(t *testing.T) {
	sock := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "multinetd answers POST requests only", http.StatusNotFound)
	}))
	_, err := wire.Post(ctx(t), sock, "/cni", []byte(`{}`))
	var status *wire.StatusError
	if !errors.As(err, &status) || status.Code != 404 || status.Body != "multinetd answers POST requests only" {
		t.Errorf("404: %v", err)
	}
	for name, answer := range map[string]string{
		"nothing":      "",
		"half a head":  "HTTP/1.1 200 OK\r\nContent-Le",
		"half a body":  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"res",
		"half a chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"res",
	} {
		_, err := wire.Post(ctx(t), rawDaemon(t, answer), "/cni", []byte(`{}`))
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "d.sock") {
			t.Errorf("%s: %v, want unexpected EOF naming the socket", name, err)
		}
	}
	_, err = wire.Post(ctx(t), rawDaemon(t, "SSH-2.0-OpenSSH\r\n"), "/cni", []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "not an HTTP/1 status line") {
		t.Errorf("not HTTP: %v", err)
	}
}

// rawDaemon answers each connection with answer, then closes it.
func rawDaemon(t *testing.T, answer string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 4096))
			_, _ = io.WriteString(c, answer)
			_ = c.Close()
		}
	}()
	return sock
}

// TestPostWaitsForTheDaemon: a daemon that starts listening late is waited for (up to
// DialWait); the caller's deadline ends the wait sooner.
func TestPostWaitsForTheDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "late.sock")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"result":{}}`)
	})}
	t.Cleanup(func() { _ = srv.Close() })
	go func() {
		time.Sleep(700 * time.Millisecond)
		if l, err := net.Listen("unix", sock); err == nil {
			_ = srv.Serve(l)
		}
	}()
	if got, err := wire.Post(ctx(t), sock, "/cni", []byte(`{}`)); err != nil || string(got) != `{"result":{}}` {
		t.Fatalf("late daemon: %q, %v", got, err)
	}

	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := wire.Post(short, filepath.Join(t.TempDir(), "none.sock"), "/cni", []byte(`{}`))
	if !errors.Is(err, syscall.ENOENT) || time.Since(start) < 400*time.Millisecond || time.Since(start) > 2*time.Second {
		t.Errorf("no daemon: %v after %v, want ENOENT after the 500ms deadline", err, time.Since(start))
	}
}

// TestPostHonoursTheDeadline: a daemon that never answers is left at the caller's deadline.
func TestPostHonoursTheDeadline(t *testing.T) {
	sock := serve(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := wire.Post(short, sock, "/cni", []byte(`{}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent daemon: %v, want the deadline", err)
	}
}
