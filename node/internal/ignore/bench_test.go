package ignore

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchRules are 100 rules of the kinds people write: extensions, build
// and tool directories, anchored paths, "**" and exceptions.
const benchRules = `# build output
*.o
*.a
*.so
*.dylib
*.dll
*.exe
*.class
*.jar
*.pyc
*.pyo
*.obj
*.lib
*.out
*.log
*.tmp
*.temp
*.bak
*.orig
*.rej
*.cache
*.iml
*.sqlite-journal
*.lock
*.pid
*.seed
*.tgz
*.map
*.min.js
*.min.css
*~
*.egg-info/
/releases/*.tar.gz
build/
dist/
target/
out/
bin/
obj/
coverage/
.cache/
__pycache__/
.idea/
.vscode/
.gradle/
.tox/
.venv/
.terraform/
.next/
.nuxt/
.parcel-cache/
.sass-cache/
/vendor/
/tmp/
/config/local.yaml
/config/secrets/
/data/raw/*.csv
/docs/_build/
/site/
/src/gen/
/assets/cache/
/photos/export/
/music/.stfolder
/backup/*.zip
/notes/drafts/
/scratch/
/private/**
**/node_modules
**/.terraform
**/logs/*.log
**/.git
**/bower_components
**/jspm_packages
**/.pytest_cache
**/.mypy_cache
**/Pods
**/DerivedData
npm-debug.log*
yarn-error.log*
core.[0-9]*
report-??.pdf
photo_[0-9][0-9][0-9].jpg
*.sw[a-p]
~*.tmp
.env.*
Icon?
*.[oa]
src/**/testdata/
/build/**/*.o
docs/**/*.pdf
**/fixtures/**/*.bin
!keep.log
!important.tmp
!/data/raw/keep.csv
!.env.example
!/config/secrets/README.md
!build/keep/
!*.min.js.map
!logs/
!/vendor/modules.txt
!dist/index.html
`

// benchPaths are n paths 1 to 6 deep among a project's usual names.
func benchPaths(n int) []struct {
	path string
	dir  bool
} {
	dirs := []string{"src", "lib", "internal", "pkg", "cmd", "docs", "assets", "images", "photos", "2023",
		"2024", "projects", "client", "server", "api", "web", "app", "components", "utils", "test",
		"node_modules", "build", "vendor", "data", "raw", "notes", "music", "Album Name", "logs", "config"}
	names := []string{"main", "index", "README", "util", "handler", "photo_012", "IMG_4031", "report-07",
		"notes", "budget", "song", "keep", "server", "style", "app", "test_helper", "x", "Thumbs", ".env"}
	exts := []string{".go", ".js", ".ts", ".tsx", ".md", ".jpg", ".png", ".txt", ".log", ".tmp", ".pdf",
		".docx", ".swp", ".json", ".yaml", ".csv", ".mp3", ".o", ".min.js", ".db", ""}
	r := rand.New(rand.NewPCG(7, 7))
	out := make([]struct {
		path string
		dir  bool
	}, n)
	for i := range out {
		depth := 1 + r.IntN(6)
		var b strings.Builder
		for range depth - 1 {
			b.WriteString(dirs[r.IntN(len(dirs))])
			b.WriteByte('/')
		}
		out[i].dir = r.IntN(5) == 0
		if out[i].dir {
			b.WriteString(dirs[r.IntN(len(dirs))])
		} else {
			b.WriteString(names[r.IntN(len(names))] + exts[r.IntN(len(exts))])
		}
		out[i].path = b.String()
	}
	return out
}

// BenchmarkMatch measures paths decided a second against the defaults and
// 100 rules (go test -run XXX -bench Match -benchmem).
func BenchmarkMatch(b *testing.B) {
	rules := Parse(".driveignore", []byte(benchRules))
	if len(rules) != 100 {
		b.Fatalf("%d rules, want 100", len(rules))
	}
	m := New(Defaults(), rules)
	paths := benchPaths(10000)
	ignored := 0
	for _, p := range paths {
		if m.Ignored(p.path, p.dir) {
			ignored++
		}
	}
	b.Logf("%d of %d paths ignored", ignored, len(paths))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := &paths[i%len(paths)]
		m.Match(p.path, p.dir)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "paths/s")
}

// BenchmarkMatchFold is BenchmarkMatch with the rules case-insensitive.
func BenchmarkMatchFold(b *testing.B) {
	var text strings.Builder
	for _, r := range Parse("", []byte(benchRules)) {
		fmt.Fprintf(&text, "(?i)%s\n", r.Text)
	}
	m := New(Defaults(), Parse(".driveignore", []byte(text.String())))
	paths := benchPaths(10000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := &paths[i%len(paths)]
		m.Match(p.path, p.dir)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "paths/s")
}
