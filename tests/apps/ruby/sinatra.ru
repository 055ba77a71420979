# A Sinatra app (Debian's ruby-sinatra): routes, a route parameter, JSON in and out.
require 'sinatra/base'
require 'json'

class LiegeSinatra < Sinatra::Base
  get('/') { 'sinatra index' }
  get('/hello/:name') { "hello #{params[:name]}" }
  post('/json') do
    content_type :json
    JSON.generate(received: JSON.parse(request.body.read), method: request.request_method)
  end
end

run LiegeSinatra
