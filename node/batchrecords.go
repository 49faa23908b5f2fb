package node

import "github.com/drive-node/drive-node/state"

// batchRecords are the rows a batch has decided and not yet written to
// the database, with the latest row of each path at hand: a batch of
// thousands of ops looks paths up once per op.
type batchRecords struct {
	files  []state.File
	latest map[string]int // path → index in files of its latest row
}

// add appends rows; a later row of a path supersedes an earlier one.
func (r *batchRecords) add(rows ...state.File) {
	if r.latest == nil {
		r.latest = map[string]int{}
	}
	for _, f := range rows {
		r.latest[f.Path] = len(r.files)
		r.files = append(r.files, f)
	}
}

// get returns a copy of p's latest row, or nil if the batch has none (or
// there is no batch: r is nil).
func (r *batchRecords) get(p string) *state.File {
	if r == nil {
		return nil
	}
	i, ok := r.latest[p]
	if !ok {
		return nil
	}
	f := r.files[i]
	return &f
}
