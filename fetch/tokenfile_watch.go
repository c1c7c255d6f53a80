package fetch

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// WatchTokenFile re-reads Config.TokenFile as soon as it changes, until
// ctx ends; it returns nil at once when the client has no token file. It
// watches the file's directory, not the file: Kubernetes replaces a
// projected token by swapping a ..data symlink, and editors and atomic
// writers rename a new file over the old, and a watch on the file itself
// would lose track at the first swap. Every event in the directory leads
// to a stat; the token is read again only when the file changed. Without
// this watch (no inotify, or an error here) the client still notices a
// change by a stat before each request.
func (c *Client) WatchTokenFile(ctx context.Context) error {
	f, ok := c.auth.(*tokenFile)
	if !ok {
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch token file %s: %w", f.path, err)
	}
	defer fw.Close()
	if err := fw.Add(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("watch token file %s: %w", f.path, err)
	}
	c.log.Debug("watching the token file for changes", "file", f.path)
	f.recheck() // a change before the watch started
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-fw.Events:
			if !ok {
				return nil
			}
			f.recheck()
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events, not the watch: check anyway.
			c.log.Warn("watching the token file", "file", f.path, "error", err)
			f.recheck()
		}
	}
}

// recheck reads the file again when a stat shows it changed; on failure
// the previous token stays (and the failure is logged).
func (f *tokenFile) recheck() {
	f.token(context.Background())
}
