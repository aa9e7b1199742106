// A real OpenID Connect provider for the single sign-on tests: panva/oidc-provider (OpenID
// certified), started by tests/esitieto/oidc.py with its whole configuration in one JSON
// environment variable, OIDC_CONFIG:
//   {"port": 0, "issuer": "http://127.0.0.1:PORT", "jwks": {"keys": [private JWKs]},
//    "clients": [{client_id, client_secret, redirect_uris, post_logout_redirect_uris}],
//    "accounts": {"<login>": {"name": ..., "roles": [...], "stations": [...], ...}}}
// Its development sign-in form (any password) stands in for the county's login page; the
// consent step is skipped as a county does for its own applications. Prints "listening" once
// it accepts connections.
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_CONFIG);
const CUSTOM = ['roles', 'stations'];

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  cookies: { keys: [config.cookie_key] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'locale'],
    esitieto: CUSTOM,
  },
  scopes: ['openid', 'profile', 'esitieto'],
  // Entra ID and Keycloak put app roles in the ID token; so does this provider.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...account };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile esitieto');
    grant.addOIDCClaims(['name', 'preferred_username', 'locale', ...CUSTOM]);
    await grant.save();
    return grant;
  },
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
