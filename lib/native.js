module.exports = require('../binding.js')
