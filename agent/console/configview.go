package console

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/edge-agent/edge-agent/agent/config"
	"github.com/edge-agent/edge-agent/internal/redact"
)

// secretKey matches config keys that hold a credential inline (api_key,
// password, token, client_secret, credential, token_url_key). Their *_file
// twins hold a path and stay visible.
var secretKey = regexp.MustCompile(`(?i)(^|_)(key|password|passwd|secret|token|credential)s?$`)

// redactedConfig renders cfg as YAML with every secret masked three ways:
// a key that names a credential has its value replaced whatever it is; a
// URL's user information and query values are masked (a token in a query
// string); and every secret the agent holds (those the config read from
// its *_file keys, tokens links obtained since) is masked wherever it
// appears. A secret given inline is thus masked by its key, one read from
// a file by its value.
func redactedConfig(cfg *config.Config, secrets *redact.Secrets) (string, error) {
	var root yaml.Node
	if err := root.Encode(cfg); err != nil {
		return "", fmt.Errorf("config view: %w", err)
	}
	held := redact.New()
	held.Add(cfg.Secrets...)
	maskNode(&root, "", held, secrets)
	b, err := yaml.Marshal(&root)
	if err != nil {
		return "", fmt.Errorf("config view: %w", err)
	}
	return secrets.Scrub(held.Scrub(string(b))), nil
}

func maskNode(n *yaml.Node, key string, sets ...*redact.Secrets) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			maskNode(c, key, sets...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			maskNode(n.Content[i+1], n.Content[i].Value, sets...)
		}
	case yaml.ScalarNode:
		if n.Value == "" || n.Tag == "!!bool" || n.Tag == "!!null" {
			return
		}
		if secretKey.MatchString(key) && !strings.HasSuffix(key, "_file") {
			n.Value, n.Style = redact.Mask, 0
			return
		}
		if strings.Contains(n.Value, "://") {
			n.Value = maskURL(n.Value)
		}
		for _, s := range sets {
			n.Value = s.Scrub(n.Value)
		}
	}
}

// maskURL masks a URL's password and its query values.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
			changed = true
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q.Set(k, "REDACTED")
		}
		u.RawQuery = q.Encode()
		changed = true
	}
	if !changed {
		return s
	}
	return u.String()
}
