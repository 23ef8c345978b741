package confsync

// SaveState exposes saveState to the tests.
func SaveState(path string, docs map[string]uint64) error {
	m := make(map[string]appliedRecord, len(docs))
	for n, v := range docs {
		m[n] = appliedRecord{Version: v, SHA256: "0000000000000000000000000000000000000000000000000000000000000000"}
	}
	return saveState(path, m)
}
