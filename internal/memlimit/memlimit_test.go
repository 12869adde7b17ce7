package memlimit

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestSet(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	write := func(t *testing.T, files map[string]string) string {
		root := t.TempDir()
		for name, content := range files {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	for _, tc := range []struct {
		name      string
		files     map[string]string
		container int64
		wantErr   bool
	}{
		{"cgroup v2 limit", map[string]string{"memory.max": "268435456\n"}, 256 << 20, false},
		{"cgroup v2 unlimited", map[string]string{"memory.max": "max\n"}, 0, false},
		{"cgroup v1 limit", map[string]string{"memory/memory.limit_in_bytes": "134217728\n"}, 128 << 20, false},
		{"cgroup v1 unlimited", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"no cgroup files", nil, 0, false},
		{"garbage", map[string]string{"memory.max": "lots\n"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(prev)
			r, err := Set(write(t, tc.files), 0.8)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if r.Container != tc.container {
				t.Fatalf("container limit %d, want %d", r.Container, tc.container)
			}
			want := prev // untouched
			if tc.container > 0 {
				want = int64(float64(tc.container) * 0.8)
			}
			if got := debug.SetMemoryLimit(-1); got != want || (tc.container > 0 && r.Limit != want) {
				t.Fatalf("Go memory limit %d (result %d), want %d", got, r.Limit, want)
			}
		})
	}
	t.Run("GOMEMLIMIT wins", func(t *testing.T) {
		debug.SetMemoryLimit(prev)
		t.Setenv("GOMEMLIMIT", "100MiB")
		r, err := Set(write(t, map[string]string{"memory.max": "268435456"}), 0.8)
		if err != nil || r.Source != "GOMEMLIMIT" || debug.SetMemoryLimit(-1) != prev {
			t.Fatalf("GOMEMLIMIT not respected: %+v %v", r, err)
		}
	})
	if _, err := Set(t.TempDir(), 1.5); err == nil {
		t.Error("a ratio over 1 was accepted")
	}
}
