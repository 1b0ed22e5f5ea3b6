package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/fusillade/fusillade/shared/domain"
)

type principalKey struct{}

// authenticate requires a valid bearer key (an admin key when admin is set) and puts the
// principal in the request context. On the Anthropic routes the key may come as x-api-key
// instead; a bearer key, when both are sent, is the one checked.
func (s *server) authenticate(next http.Handler, admin bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		key = strings.TrimSpace(key)
		anthropic := isMessagesPath(r.URL.Path)
		if (!ok || key == "") && anthropic {
			// Anthropic's clients send the key as x-api-key (curl, anthropic-sdk-go) or as a
			// bearer token (the TypeScript SDK 1.x); both are accepted on its routes.
			key, ok = strings.TrimSpace(r.Header.Get("X-Api-Key")), true
		}
		if !ok || key == "" {
			msg := "You didn't provide an API key. Provide it in the Authorization header as 'Bearer YOUR_KEY'."
			if anthropic {
				msg = "You didn't provide an API key. Provide it in the x-api-key header, or in the Authorization header as 'Bearer YOUR_KEY'."
			}
			s.error(w, r, &domain.Error{Code: domain.EUnauthorized, Message: msg})
			return
		}
		p, err := s.store.Authenticate(r.Context(), key)
		if err != nil {
			s.error(w, r, err)
			return
		}
		if admin && !p.Admin {
			// Same answer as a missing route: non-admins cannot map the admin surface.
			s.unknownRoute(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func principal(r *http.Request) domain.Principal {
	p, _ := r.Context().Value(principalKey{}).(domain.Principal)
	return p
}
