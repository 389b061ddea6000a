// GraphiQL for chatroom, from vendored assets only (no CDN: it works offline).
// Queries and mutations POST to /graphql; subscriptions go over a websocket with the
// graphql-transport-ws protocol (the vendored graphql-ws client). The Authorization header from
// the Headers tab is sent on both: as an HTTP header, and in connection_init's payload.
(function () {
  "use strict";

  var TOKEN_KEY = "chatroom.token"; // the web page's guest token, if you signed in there
  var PLACEHOLDER = "Bearer <token>";
  var httpUrl = new URL("/graphql", location.href).href;
  var wsUrl = httpUrl.replace(/^http/, "ws");

  var storedToken = null;
  try {
    storedToken = localStorage.getItem(TOKEN_KEY);
  } catch (e) {
    storedToken = null;
  }

  var defaultHeaders = JSON.stringify(
    { Authorization: storedToken ? "Bearer " + storedToken : PLACEHOLDER },
    null,
    2,
  );

  var defaultQuery = [
    "# chatroom's GraphQL API. Press the ▶ button (or Ctrl+Enter) to run an operation.",
    "#",
    "# Most operations need a token. Get one with",
    '#   mutation { createGuestSession(displayName: "me") { token } }',
    '# and put it in the Headers tab below: { "Authorization": "Bearer <token>" }.',
    "# Subscriptions (roomEvents, taskAvailable, cliLoginStatus) run over a websocket",
    "# with the same header. The Docs pane (book icon) lists every type and field.",
    "",
    "{",
    "  teams {",
    "    id",
    "    name",
    "    roles",
    "    entryPoint",
    "  }",
    "}",
    "",
  ].join("\n");

  // One fetcher per Authorization value: the websocket client sends it once, in connection_init.
  var fetchers = new Map();

  function fetcherFor(auth) {
    var fetcher = fetchers.get(auth);
    if (!fetcher) {
      var wsClient = window.graphqlWs.createClient({
        url: wsUrl,
        lazy: true,
        retryAttempts: 3,
        connectionParams: auth ? { authorization: auth } : {},
      });
      fetcher = window.GraphiQL.createFetcher({ url: httpUrl, wsClient: wsClient });
      fetchers.set(auth, fetcher);
    }
    return fetcher;
  }

  function fetcher(params, opts) {
    var headers = Object.assign({}, (opts && opts.headers) || {});
    var auth = null;
    Object.keys(headers).forEach(function (name) {
      if (name.toLowerCase() !== "authorization") return;
      var value = String(headers[name] || "").trim();
      // The hint left as it is (or an empty value) means "no token".
      if (!value || value.indexOf("<") !== -1) delete headers[name];
      else auth = value;
    });
    return fetcherFor(auth)(params, Object.assign({}, opts || {}, { headers: headers }));
  }

  var root = document.getElementById("graphiql");
  root.textContent = "";
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: defaultHeaders,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    }),
  );
})();
