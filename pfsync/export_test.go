package pfsync

// DirtyCounts returns the engine's count of entries waiting for the Table
// (Stats.External) and the number it actually holds, for invariant checks.
func DirtyCounts(e *Engine) (counted, actual int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ent := range e.store {
		if ent.flags&fDirty != 0 {
			actual++
		}
	}
	return e.external, actual
}
