package watch_test

import (
	"os"
	"strings"
	"testing"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/internal/leakscan"
)

// The leak scan (internal/leakscan), under the names this package's tests use.
var (
	noteSecret = leakscan.Note
	noteErr    = leakscan.NoteErr
)

type scanWriter = leakscan.Writer

func TestMain(m *testing.M) { os.Exit(leakscan.Main(m)) }

// noteSeedSecrets notes the seed's credentials and the secret values that
// are marked as such (they hold "SECRET").
func noteSeedSecrets(seed *devserver.Seed) {
	for _, c := range seed.Clients {
		noteSecret(c.ClientSecret)
	}
	for _, s := range seed.Secrets {
		for _, v := range s.Data {
			if str, ok := v.(string); ok && strings.Contains(str, "SECRET") {
				noteSecret(str)
			}
		}
	}
}
