/**
 * The console's two HTML documents. They are constant: no agent data is ever put into markup on
 * the server; the page script (`/console/assets/console.js`) fetches it and renders it as text.
 */

/** Strict CSP of every console response: own scripts and styles only, no inline code, no remote origins. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const head = (title: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="stylesheet" href="/console/assets/console.css">
</head>`;

/** Login form; `failed` adds the (fixed) error line. */
export function loginPage(failed: boolean): string {
  return `${head('geofence console — sign in')}
<body class="login">
<form method="post" action="/console/login" class="login-form">
<h1>geofence console</h1>
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
${failed ? '<p class="error" role="alert">Wrong token.</p>' : ''}
<button type="submit">Sign in</button>
</form>
</body>
</html>
`;
}

/** The console shell; the script fills it. */
export function consolePage(): string {
  return `${head('geofence console')}
<body>
<header><h1>geofence console</h1><span id="conn" class="conn">connecting…</span><button id="logout" type="button">Sign out</button></header>
<main>
<section id="map-pane"><div id="map"></div></section>
<section id="side">
<h2>Live feed</h2>
<ol id="feed" class="feed"></ol>
<h2>Record</h2>
<div id="detail" class="detail"><p class="hint">Click a feed entry.</p></div>
</section>
<section id="agents-pane">
<h2>Agents</h2>
<table id="agents"><thead><tr><th>agent</th><th>status</th><th>keyid</th><th>trust</th><th>last seen</th><th>last location</th><th>last rejection</th><th>actions</th></tr></thead><tbody></tbody></table>
</section>
</main>
<script src="/console/assets/console.js"></script>
</body>
</html>
`;
}
