package state

import (
	"slices"
	"sync"
)

// maxCachedFiles bounds the records File keeps at hand (about a MiB).
const maxCachedFiles = 4096

// fileCache keeps the records File has read, absent ones included: the
// engine looks the same paths up several times while it decides one op,
// and a batch of ops shares parent directories. A write transaction
// makes it forget, when it ends, the records it may change (every one,
// unless it says which); until then it answers with what was committed
// before, as a read that began before the commit would. What a read
// found while a write was in progress is not kept. Only the daemon
// process writes the files table; another process (status, pair) reads
// and writes other tables only.
type fileCache struct {
	mu      sync.Mutex
	gen     uint64 // advanced at the start and end of every write
	writing int    // write transactions in progress
	m       map[string]cachedFile
}

type cachedFile struct {
	f  File
	ok bool
}

// recordsTouched says which records of the files table a write
// transaction may change: every one, or those at paths.
type recordsTouched struct {
	all   bool
	paths []string
}

// everyRecord is a write that may change any record.
var everyRecord = recordsTouched{all: true}

// get returns the cached answer for path, if any, and the generation to
// pass to put after reading the database.
func (c *fileCache) get(path string) (f File, ok, hit bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, hit := c.m[path]
	if hit {
		return e.f.clone(), e.ok, true, c.gen
	}
	return File{}, false, false, c.gen
}

// generation returns the generation to pass to put after reading the
// database.
func (c *fileCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put caches what the database said about path, unless a write began or
// ended since gen was read (the answer may predate it).
func (c *fileCache) put(path string, f File, ok bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.writing > 0 {
		return
	}
	if c.m == nil || len(c.m) >= maxCachedFiles {
		c.m = make(map[string]cachedFile)
	}
	c.m[path] = cachedFile{f.clone(), ok}
}

// begin is called when a write transaction begins. Until it ends, the
// records kept are what was committed before it, as a read of the
// database would find.
func (c *fileCache) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.writing++
}

// end is called when a write transaction has committed or rolled back:
// the records it touched are forgotten.
func (c *fileCache) end(touched recordsTouched) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.writing--
	if touched.all {
		clear(c.m)
		return
	}
	for _, p := range touched.paths {
		delete(c.m, p)
	}
}

// clone copies f's slices, so no caller shares them with the cache.
func (f File) clone() File {
	f.Version = slices.Clone(f.Version)
	f.Heads = slices.Clone(f.Heads)
	return f
}
