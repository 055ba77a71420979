# frozen_string_literal: true

# The smallest Rack app: every request gets 200 and "Hello World!" with a Content-Length.
#
# bench/wsgi serves it with every Rack server it compares (liege, uWSGI's rack plugin, Puma,
# Thin), so what is measured is the server, not the app. Body and headers are those of
# bench/apps/hello.py.
BODY = 'Hello World!'
HEADERS = { 'Content-Type' => 'text/plain', 'Content-Length' => BODY.bytesize.to_s }.freeze

run ->(_env) { [200, HEADERS.dup, [BODY]] }
