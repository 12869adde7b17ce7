package oga

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait on the listener: generous, it only matters when a test fails.
const waitTimeout = 20 * time.Second

func fastTiming() Timing {
	return Timing{
		ConnectRetryDelay: 20 * time.Millisecond,
		QuickRetries:      5,
		CooldownDelay:     400 * time.Millisecond,
		IdleTimeout:       300 * time.Millisecond,
		ResponsiveTimeout: 5 * time.Second,
		WriteTimeout:      2 * time.Second,
		DialTimeout:       time.Second,
		FirstConnectWait:  3 * time.Second,
		CompletionTimeout: 3 * time.Second,
	}
}

type harness struct {
	l       *Listener
	changes sync.Map // uuid → *atomic.Int64
	logs    *logSink
}

type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) add(prefix, args string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, prefix+" "+args)
}

func newHarness(t *testing.T, timing Timing) *harness {
	h := &harness{logs: &logSink{}}
	log := funcr.New(h.logs.add, funcr.Options{Verbosity: 1})
	h.l = NewListener(ListenerOptions{Log: log, Timing: timing, OnChange: func(id string) {
		c, _ := h.changes.LoadOrStore(id, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// rawGuest is a minimal socket server recording the host's lines, for exact wire checks.
type rawGuest struct {
	path  string
	ln    net.Listener
	lines chan string
	mu    sync.Mutex
	conn  net.Conn
	wg    sync.WaitGroup
}

func newRawGuest(t *testing.T) *rawGuest {
	path := filepath.Join(t.TempDir(), "raw.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	g := &rawGuest{path: path, ln: ln, lines: make(chan string, 1000)}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			g.conn = c
			g.mu.Unlock()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				g.lines <- sc.Text()
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		if g.conn != nil {
			g.conn.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

func (g *rawGuest) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-g.lines:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no line from host")
		return ""
	}
}

func (g *rawGuest) write(t *testing.T, s string) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.conn != nil
	}).WithTimeout(waitTimeout).Should(BeTrue(), "raw guest connection")
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.conn.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}
