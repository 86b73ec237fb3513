import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['**/.portcullis-diff-*/**', 'bench/.routes/**', 'dist/**', 'node_modules/**', 'coverage/**', '.tap/**', 'bench/results/**']
})
