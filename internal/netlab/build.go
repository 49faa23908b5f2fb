//go:build linux

package netlab

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// builds caches binaries per test process: building once per package test
// run keeps the end-to-end tests fast. Test support only.
var builds sync.Map // key -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// BuildBinary builds the Go package pkg (CGO_ENABLED=0, plus env such as
// GOARCH=arm64) once per test process and returns the binary's path.
// With NETLAB_RACE set in the environment, a build for this host (no env)
// uses the race detector instead, which needs cgo: the end-to-end tests
// then look for data races in real daemons.
func BuildBinary(t testing.TB, pkg string, env ...string) string {
	t.Helper()
	key := pkg + "|" + strings.Join(env, " ")
	v, _ := builds.LoadOrStore(key, &buildResult{})
	r := v.(*buildResult)
	r.once.Do(func() {
		sum := sha256.Sum256([]byte(key))
		dir, err := os.MkdirTemp("", "netlab-bin-")
		if err != nil {
			r.err = err
			return
		}
		r.path = filepath.Join(dir, filepath.Base(pkg)+"-"+hex.EncodeToString(sum[:4]))
		args := []string{"build", "-o", r.path}
		cgo := "CGO_ENABLED=0"
		if os.Getenv("NETLAB_RACE") != "" && len(env) == 0 {
			args, cgo = append(args, "-race"), "CGO_ENABLED=1"
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = append(append(os.Environ(), cgo), env...)
		r.out, r.err = cmd.CombinedOutput()
	})
	if r.err != nil {
		t.Fatalf("netlab: build %s: %v\n%s", pkg, r.err, r.out)
	}
	return r.path
}

// Main runs a test package's tests, then removes the binaries
// BuildBinary built for them (each build is tens of MiB). A package that
// builds binaries calls it from its TestMain.
func Main(m *testing.M) {
	code := m.Run()
	builds.Range(func(_, v any) bool {
		if r := v.(*buildResult); r.path != "" {
			os.RemoveAll(filepath.Dir(r.path))
		}
		return true
	})
	os.Exit(code)
}
