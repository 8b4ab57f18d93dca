// Express 4 and Koa 2 are installed under aliases; their APIs used here match
// the current major's types.
declare module 'express4' {
  import express = require('express')
  export = express
}
declare module 'koa2' {
  import Koa = require('koa')
  export = Koa
}
declare module 'fastify4' {
  import fastify = require('fastify')
  export = fastify
}
