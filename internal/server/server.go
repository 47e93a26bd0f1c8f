// Package server is the daemon's side of the shim protocol: HTTP over a unix socket that only
// root can open. It decodes a request, bounds its size and time, hands it to the handler and
// maps the outcome onto a CNI error code. It never panics on bad input.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
)

// Handler serves the CNI verbs.
type Handler interface {
	Add(ctx context.Context, req *cniapi.Request) (json.RawMessage, error)
	Del(ctx context.Context, req *cniapi.Request) error
	Check(ctx context.Context, req *cniapi.Request) error
	GC(ctx context.Context, req *cniapi.Request) error
	Status(ctx context.Context, req *cniapi.Request) error
}

// Observer is told about each finished request (metrics).
type Observer func(command string, took time.Duration, err error)

// maxRequest bounds a request body: a conf on stdin is a few KiB.
const maxRequest = 1 << 20

// Server answers shim requests.
type Server struct {
	h       Handler
	toCNI   func(error) *types.Error
	observe Observer
	timeout time.Duration
	log     *slog.Logger
}

// New returns a server; toCNI maps handler errors to CNI errors, timeout bounds one request.
func New(h Handler, toCNI func(error) *types.Error, observe Observer, timeout time.Duration, log *slog.Logger) *Server {
	return &Server{h: h, toCNI: toCNI, observe: observe, timeout: timeout, log: log}
}

// Listen opens the unix socket at path with mode 0600, replacing a stale socket file.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("socket dir for %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return l, nil
}

// RequestLabel is the profiler label that names the socket path a CPU sample serves.
const RequestLabel = "request"

// ServeHTTP handles a POSTed request; the daemon mounts it on its path (/cni, /dhcp).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "multinetd answers POST requests only", http.StatusNotFound)
		return
	}
	var req cniapi.Request
	body := http.MaxBytesReader(w, r.Body, maxRequest)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		s.reply(w, cniapi.Response{Error: &types.Error{Code: types.ErrDecodingFailure,
			Msg: fmt.Sprintf("multinetd: bad request from the shim: %v", err)}})
		return
	}
	_, _ = io.Copy(io.Discard, body)
	// The profiler label request=<path> marks this request's CPU samples (the manager adds phase=).
	ctx := pprof.WithLabels(r.Context(), pprof.Labels(RequestLabel, r.URL.Path))
	pprof.SetGoroutineLabels(ctx)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	result, err := s.dispatch(ctx, &req)
	if s.observe != nil {
		s.observe(req.Command, time.Since(start), err)
	}
	if err != nil {
		s.reply(w, cniapi.Response{Error: s.toCNI(err)})
		return
	}
	s.reply(w, cniapi.Response{Result: result})
}

func (s *Server) dispatch(ctx context.Context, req *cniapi.Request) (res json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic serving a CNI request", "command", req.Command, "containerID", req.ContainerID, "panic", p)
			err = fmt.Errorf("multinetd: internal error serving %s (see the daemon log)", req.Command)
		}
	}()
	switch req.Command {
	case "ADD":
		return s.h.Add(ctx, req)
	case "DEL":
		return nil, s.h.Del(ctx, req)
	case "CHECK":
		return nil, s.h.Check(ctx, req)
	case "GC":
		return nil, s.h.GC(ctx, req)
	case "STATUS":
		return nil, s.h.Status(ctx, req)
	}
	return nil, &types.Error{Code: types.ErrInvalidEnvironmentVariables,
		Msg: fmt.Sprintf("unknown CNI_COMMAND %q", req.Command)}
}

func (s *Server) reply(w http.ResponseWriter, resp cniapi.Response) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		s.log.Warn("write reply to the shim", "err", err)
	}
}
